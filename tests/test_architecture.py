"""vggbook.architecture: the builder is the real VGG16, and the layer table has the published numbers."""

from __future__ import annotations

import generic_models
import keras
import numpy as np
import pandas as pd
import pytest

import vggbook
from vggbook.architecture import VGG_CONFIGS

SMALL = {"width": 0.125, "input_shape": (32, 32, 3), "include_top": False}

# Simonyan & Zisserman (2015), Table 2 (millions, rounded there); exact counts as Keras and torchvision give them.
PUBLISHED_PARAMS_WITH_HEAD = {
    "A": 132_863_336,
    "B": 133_047_848,
    "C": 133_638_952,
    "D": 138_357_544,
    "E": 143_667_240,
}


# ---------------------------------------------------------------------------------------------
# Published numbers


def test_vgg16_parameter_count_with_head(vgg16_full):
    assert vgg16_full.count_params() == 138_357_544
    assert vgg16_full.name == "vgg16"
    assert vgg16_full.output_shape == (None, 1000)


def test_vgg16_parameter_count_without_head():
    model = vggbook.build_vgg16(include_top=False, kernel_initializer="zeros")
    assert model.count_params() == 14_714_688
    assert model.output_shape == (None, 7, 7, 512)


@pytest.mark.parametrize("config", ["A", "B", "C", "E"])
def test_parameter_counts_of_the_other_configs(config):
    # Zero initialisation: the count does not depend on the values and zeros cost nothing to draw.
    model = vggbook.build_vgg(config, kernel_initializer="zeros")
    assert model.count_params() == PUBLISHED_PARAMS_WITH_HEAD[config]


def test_vgg19_without_head_matches_keras_file_size():
    assert vggbook.build_vgg("E", include_top=False, kernel_initializer="zeros").count_params() == 20_024_384


def test_layer_table_params_add_up(vgg16_full):
    table = vggbook.layer_table(vgg16_full)
    assert table.params.sum() == 138_357_544
    # 89 % of the parameters live in the fully connected head.
    head = table.loc[["fc1", "fc2", "predictions"], "params"].sum()
    assert round(head / table.params.sum(), 2) == 0.89


def test_total_macs_at_224(vgg16_full):
    table = vggbook.layer_table(vgg16_full)
    assert round(table.macs.sum() / 1e9, 2) == 15.47  # torchvision's published 15.47 GFLOPS (MACs)


def test_macs_of_one_conv_layer_by_hand(vgg16_full):
    table = vggbook.layer_table(vgg16_full)
    # output 56×56 positions × (3×3 kernel × 128 input channels) × 256 filters
    assert table.loc["block3_conv1", "macs"] == 56 * 56 * 3 * 3 * 128 * 256
    assert table.loc["block1_conv2", "macs"] == 224 * 224 * 3 * 3 * 64 * 64
    assert table.loc["fc1", "macs"] == 7 * 7 * 512 * 4096
    assert table.loc["block1_pool", "macs"] == 0
    assert table.loc["block1_conv1", "activation_bytes"] == 4 * 224 * 224 * 64


def test_receptive_fields(vgg16_full):
    table = vggbook.layer_table(vgg16_full)
    assert table.loc["block1_conv1", "receptive_field"] == 3
    assert table.loc["block1_conv2", "receptive_field"] == 5
    assert table.loc["block1_pool", "receptive_field"] == 6
    assert table.loc["block1_pool", "stride"] == 2
    # google-research/receptive_field, VGG16 pool5: size 212, effective stride 32, effective padding 90.
    assert tuple(table.loc["block5_pool", ["receptive_field", "stride", "padding"]]) == (212, 32, 90)
    # the dense layers have no receptive field
    assert table.loc["fc1", "receptive_field"] is pd.NA


def test_layer_table_shapes(vgg16_full):
    table = vggbook.layer_table(vgg16_full)
    assert table.loc["block1_conv1", "output_shape"] == (224, 224, 64)
    assert table.loc["block5_pool", "output_shape"] == (7, 7, 512)
    assert table.loc["flatten", "output_shape"] == (25088,)
    assert table.loc["predictions", "output_shape"] == (1000,)


# ---------------------------------------------------------------------------------------------
# The same network as keras.applications.VGG16


def _layer_config(layer: keras.layers.Layer) -> dict:
    """The parts of a layer's config that define what it computes (not its name or initializer)."""
    config = layer.get_config()
    keys = ("filters", "kernel_size", "strides", "padding", "activation", "use_bias", "units", "pool_size")
    return {"type": type(layer).__name__, **{k: config[k] for k in keys if k in config}}


@pytest.fixture(scope="module")
def keras_vgg16_top():
    return keras.applications.VGG16(weights=None)


def test_same_layers_and_configs_as_keras(vgg16_full, keras_vgg16_top):
    ours, ref = vgg16_full.layers, keras_vgg16_top.layers
    # Keras numbers its auto-named Input layers per session, so compare the input by shape.
    assert isinstance(ours[0], keras.layers.InputLayer) and isinstance(ref[0], keras.layers.InputLayer)
    assert vgg16_full.input_shape == keras_vgg16_top.input_shape == (None, 224, 224, 3)
    assert [layer.name for layer in ours[1:]] == [layer.name for layer in ref[1:]]
    assert [_layer_config(layer) for layer in ours] == [_layer_config(layer) for layer in ref]
    assert [w.shape for w in vgg16_full.weights] == [w.shape for w in keras_vgg16_top.weights]


def test_same_outputs_as_keras_without_head():
    ref = keras.applications.VGG16(weights=None, include_top=False, input_shape=(64, 64, 3))
    ours = vggbook.build_vgg16(include_top=False, input_shape=(64, 64, 3), kernel_initializer="zeros")
    ours.set_weights(ref.get_weights())
    x = np.random.default_rng(0).normal(0, 50, (2, 64, 64, 3)).astype(np.float32)
    expected = keras.ops.convert_to_numpy(ref(x, training=False))
    got = keras.ops.convert_to_numpy(ours(x, training=False))
    assert expected.shape == got.shape == (2, 2, 2, 512)
    assert np.abs(expected).max() > 0  # a non-trivial comparison
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6 * np.abs(expected).max())


def test_same_outputs_as_keras_with_head(keras_vgg16_top):
    ours = vggbook.build_vgg16(kernel_initializer="zeros")
    ours.set_weights(keras_vgg16_top.get_weights())
    x = np.random.default_rng(1).normal(0, 50, (1, 224, 224, 3)).astype(np.float32)
    expected = keras.ops.convert_to_numpy(keras_vgg16_top(x, training=False))
    got = keras.ops.convert_to_numpy(ours(x, training=False))
    assert got.shape == (1, 1000)
    assert expected.std() > 0  # the softmax is not flat, so equality means something
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-9)


# ---------------------------------------------------------------------------------------------
# Seeds, options and errors


def test_same_seed_same_weights_different_seed_different():
    keras.utils.set_random_seed(1)
    first = vggbook.build_vgg16(**SMALL, seed=3).get_weights()
    keras.utils.set_random_seed(2)  # the global seed must not matter, only `seed`
    again = vggbook.build_vgg16(**SMALL, seed=3).get_weights()
    other = vggbook.build_vgg16(**SMALL, seed=4).get_weights()
    assert len(first) == len(again) == 26  # 13 conv layers × (kernel, bias)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    kernels = range(0, len(first), 2)
    assert all(not np.array_equal(first[i], other[i]) for i in kernels)


def test_layers_get_different_initial_kernels():
    model = vggbook.build_vgg16(**SMALL)
    conv2, conv3 = (model.get_layer(name).get_weights()[0] for name in ("block5_conv2", "block5_conv3"))
    assert not np.array_equal(conv2, conv3)


def test_head_is_seeded_too():
    kwargs = {"width": 0.125, "input_shape": (32, 32, 3), "classes": 10}
    a = vggbook.build_vgg16(**kwargs, seed=5).get_layer("fc1").get_weights()[0]
    b = vggbook.build_vgg16(**kwargs, seed=5).get_layer("fc1").get_weights()[0]
    np.testing.assert_array_equal(a, b)


def test_width_scales_channels_and_units():
    model = vggbook.build_vgg16(width=0.125, input_shape=(32, 32, 3), classes=10)
    assert model.get_layer("block1_conv1").filters == 8
    assert model.get_layer("block5_conv3").filters == 64
    assert model.get_layer("fc1").units == 512
    assert model.output_shape == (None, 10)


def test_custom_input_shape():
    model = vggbook.build_vgg16(width=0.125, input_shape=(64, 96, 1), include_top=False)
    assert model.input_shape == (None, 64, 96, 1)
    assert model.output_shape == (None, 2, 3, 64)


def test_batch_norm_variant():
    model = vggbook.build_vgg16(**SMALL, batch_norm=True)
    assert model.name == "vgg16_bn"
    names = [layer.name for layer in model.layers]
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(bns) == 13
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert all(not conv.use_bias for conv in convs)
    assert all(conv.get_config()["activation"] == "linear" for conv in convs)
    # conv → BN → ReLU, named like Keras' layers
    i = names.index("block2_conv1")
    assert names[i : i + 3] == ["block2_conv1", "block2_bn1", "block2_relu1"]
    assert "block5_relu3" in names
    assert vggbook.default_layers(model) == [n for n in names if "_relu" in n or n.endswith("_pool")]
    assert len(vggbook.default_layers(model)) == 18


def test_config_c_has_one_by_one_convolutions():
    model = vggbook.build_vgg("C", **SMALL)
    assert model.get_layer("block3_conv3").kernel_size == (1, 1)
    assert model.get_layer("block4_conv3").kernel_size == (1, 1)
    assert model.get_layer("block5_conv3").kernel_size == (1, 1)
    assert model.get_layer("block3_conv2").kernel_size == (3, 3)


@pytest.mark.parametrize(("config", "convs"), [("A", 8), ("B", 10), ("C", 13), ("D", 13), ("E", 16)])
def test_depths_of_configs(config, convs):
    model = vggbook.build_vgg(config, **SMALL)
    assert sum(isinstance(layer, keras.layers.Conv2D) for layer in model.layers) == convs
    assert sum(len(block) for block in VGG_CONFIGS[config]) == convs


def test_block_layers():
    model = vggbook.build_vgg16(**SMALL)
    assert [layer.name for layer in vggbook.block_layers(model, 3)] == [
        "block3_conv1",
        "block3_conv2",
        "block3_conv3",
        "block3_pool",
    ]
    with pytest.raises(ValueError, match="no block 6"):
        vggbook.block_layers(model, 6)


def test_parse_conv():
    assert vggbook.parse_conv("conv3-64") == (3, 64)
    assert vggbook.parse_conv("conv1-512") == (1, 512)
    with pytest.raises(ValueError, match="conv3-64"):
        vggbook.parse_conv("maxpool")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"config": "F"}, r"unknown VGG config 'F'.*\['A', 'B', 'C', 'D', 'E'\]"),
        ({"width": 0}, "width must be positive"),
        ({"width": -0.5}, "width must be positive"),
        ({"input_shape": (224, 224)}, r"input_shape must be \(height, width, channels\)"),
        ({"input_shape": (16, 16, 3)}, "too small.*32×32"),
        ({"input_shape": (224, 31, 3)}, "too small"),
        ({"classes": 0}, "classes must be at least 1"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        vggbook.build_vgg(**{"width": 0.125, **kwargs})


def test_dropout_after_fc1_and_fc2_adds_no_weights():
    plain = vggbook.build_vgg16(width=0.125, input_shape=(32, 32, 3), classes=5, seed=0)
    dropped = vggbook.build_vgg16(width=0.125, input_shape=(32, 32, 3), classes=5, dropout=0.5, seed=0)
    assert [layer.name for layer in dropped.layers][-5:] == ["fc1", "fc1_dropout", "fc2", "fc2_dropout", "predictions"]
    assert dropped.count_params() == plain.count_params()
    for a, b in zip(plain.weights, dropped.weights, strict=True):  # the same seeded weights
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(dropped(x, training=False), plain(x, training=False), rtol=1e-6)
    with pytest.raises(ValueError, match=r"dropout must be a rate in \[0, 1\)"):
        vggbook.build_vgg16(dropout=1.0)


# ---------------------------------------------------------------------------------------------
# Any Keras image model: graphs with merges, ResNet50, Sequential models (chapter "your_model")

# Araujo, Norris & Sim (2019), "Computing receptive fields of convolutional neural networks", Distill; their
# library's table (google-research/receptive_field, RECEPTIVE_FIELD_TABLE.md) for TF-Slim's resnet_v1_50:
# (receptive field, effective stride, effective padding) of each block's output at 224 and 321 pixels.
PUBLISHED_SLIM_RESNET_V1_50 = {
    224: {"block1": (35, 8, 15), "block2": (99, 16, 47), "block3": (291, 32, 143), "block4": (483, 32, 239)},
    321: {"block1": (35, 8, 17), "block2": (99, 16, 49), "block3": (291, 32, 145), "block4": (483, 32, 241)},
}


def _field(table: pd.DataFrame, name: str) -> tuple[int, int, int]:
    return tuple(int(v) for v in table.loc[name, ["receptive_field", "stride", "padding"]])


@pytest.mark.parametrize("size", [224, 321])
def test_receptive_fields_of_slim_resnet_v1_50_are_the_published_ones(size):
    # The published network's layout (tests/generic_models.py): 'same' padding there depends on the map's size,
    # which is why the table gives 239 at 224 px and 241 at 321 px.
    table = vggbook.layer_table(generic_models.slim_resnet_v1_50(size))
    assert {b: _field(table, b) for b in PUBLISHED_SLIM_RESNET_V1_50[size]} == PUBLISHED_SLIM_RESNET_V1_50[size]


@pytest.fixture(scope="module")
def resnet50_table():
    return vggbook.layer_table(generic_models.resnet50())


def test_resnet50_parameters_macs_and_last_field(resnet50_table):
    table = resnet50_table
    assert table.params.sum() == generic_models.resnet50().count_params() == 25_636_712  # Keras' published count
    # He et al. (2016), Table 1: 3.8 × 10⁹ FLOPs for ResNet-50, counted as multiply-adds (their section 3.3), to the
    # two digits printed. (torchvision's 4.09 GFLOPS is for its "v1.5", whose stride sits in the 3×3 convolution.)
    assert 3.8e9 <= table.macs.sum() < 3.9e9
    assert table.loc["conv1_conv", "macs"] == 112 * 112 * 7 * 7 * 3 * 64
    assert table.loc["conv3_block1_1_conv", "macs"] == 28 * 28 * 256 * 128  # the stride-2 1×1: output positions
    # The last convolution and the block output sees 483 px with an effective stride of 32, as Araujo et al.
    # publish for ResNet-50. Keras' ResNet50 pads 1 px before its 3×3/2 pool (ZeroPadding2D) where TF-Slim's
    # 'same' pool pads 0 on the even 112-px map: 2 px more (1 px × stride 2) than the published 239 at 224 px,
    # and the same as the published 241 at 321 px, where TF-Slim's pool pads 1 px too.
    for name in ("conv5_block3_3_conv", "conv5_block3_out"):
        assert _field(table, name) == (483, 32, PUBLISHED_SLIM_RESNET_V1_50[321]["block4"][2])
    assert _field(table, "pool1_pool") == (11, 4, 3 + 1 * 2)  # conv1: 3 px before; pool1_pad: 1 px at stride 2
    assert table.loc["predictions", "receptive_field"] is pd.NA  # after global pooling, no window


def test_resnet50_add_sees_the_union_of_its_two_paths(resnet50_table):
    table = resnet50_table
    # conv2_block1: the 1×1 shortcut reads pool1 (11 px); the main path adds a 3×3 at stride 4 (19 px). Both are
    # centred on the same pixel, so the union is the larger field.
    assert _field(table, "conv2_block1_0_bn") == (11, 4, 5)
    assert _field(table, "conv2_block1_3_bn") == (19, 4, 9)
    assert _field(table, "conv2_block1_add") == _field(table, "conv2_block1_out") == (19, 4, 9)
    # conv3_block1: both paths start with a 1×1 convolution of stride 2 (Keras' ResNet50 is v1, not v1.5)
    assert _field(table, "conv3_block1_0_conv") == (35, 8, 17)
    assert _field(table, "conv3_block1_add") == (35 + 2 * 8, 8, 17 + 8)


def test_resnet50_fields_are_what_a_line_of_pixels_reaches():
    """The fields measured on ResNet50 itself (tests/generic_models.py: averaging kernels, a line of ones): at the
    two ends of one field of each stage's output, and one row beyond each."""
    expected = {
        "conv2_block3_out": (35, 4, 17),
        "conv3_block4_out": (99, 8, 49),
        "conv4_block6_out": (291, 16, 145),
        "conv5_block3_out": (483, 32, 241),
    }
    lines = set()
    for rf, stride, pad in expected.values():
        first = -(-(pad + 1) // stride) * stride - pad  # the first field that starts inside the image, past row 0
        lines |= {first - 1, first, first + rf - 1, first + rf}
    model = keras.applications.ResNet50(weights=None, include_top=False, input_shape=(512, 32, 3))
    table = vggbook.layer_table(model)
    assert {name: _field(table, name) for name in expected} == expected  # the same at 512 × 32 px as at 224
    assert (
        generic_models.field_problems(generic_models.make_positive(model), table, list(expected), sorted(lines)) == []
    )


def test_fields_of_a_small_residual_network_are_measured_ones():
    model = generic_models.make_positive(generic_models.small_residual())
    table = vggbook.layer_table(model)
    spatial = [name for name in table.index if len(table.loc[name, "output_shape"]) == 3]
    assert len(spatial) == 21
    assert generic_models.field_problems(model, table, spatial, list(range(model.input_shape[1]))) == []
    # "same" padding as TensorFlow pads it: a 3×3/2 convolution on the even 22-px map pads 0 px before (1 after);
    # a 3×3/2 average pool on the odd 11-px map pads 1 px before and after
    assert _field(table, "down_conv")[2] == _field(table, "b_out")[2]
    assert _field(table, "down_pool")[2] == _field(table, "down_conv")[2] + 1 * _field(table, "down_conv")[1]


def test_a_field_the_table_cannot_give_is_empty_not_wrong():
    inputs = keras.Input((32, 48, 3))
    x = keras.layers.Conv2D(4, (1, 5), padding="same", name="wide")(inputs)  # rows and columns differ
    y = keras.layers.UpSampling2D(name="up")(keras.layers.Conv2D(4, 3, padding="same", name="square")(inputs))
    five = keras.layers.Conv2D(4, 5, padding="same", name="five")(inputs)
    square = keras.layers.Conv2D(4, 3, padding="same", name="square2")(inputs)
    stacked = keras.layers.Concatenate(name="channels2")([five, square])
    rows = keras.layers.Concatenate(axis=1, name="rows")([five, square])  # maps stacked in space
    model = keras.Model(inputs, [x, y, stacked, rows])
    table = vggbook.layer_table(model)
    assert _field(table, "square") == (3, 1, 1)
    assert _field(table, "channels2") == (5, 1, 2)  # the union of a 5×5 and a 3×3 field on the same centre
    for name in ("wide", "up", "rows"):
        assert table.loc[name, "receptive_field"] is pd.NA, name


@pytest.mark.parametrize("with_input", [True, False])
def test_layer_table_of_a_sequential_model(with_input):
    stack = [
        keras.layers.Conv2D(4, 3, activation="relu", name="c1"),
        keras.layers.MaxPooling2D(name="p1"),
        keras.layers.Conv2D(8, 3, padding="same", name="c2"),
        keras.layers.Flatten(name="flat"),
        keras.layers.Dense(3, name="out"),
    ]
    model = keras.Sequential([keras.Input((16, 16, 3)), *stack] if with_input else stack)
    if not with_input:
        with pytest.raises(ValueError, match=r"has not been built yet.*keras\.Input\(shape=.*model\.build"):
            vggbook.layer_table(model)
        model.build((None, 16, 16, 3))
    table = vggbook.layer_table(model)
    assert list(table.index) == ["c1", "p1", "c2", "flat", "out"]
    assert [_field(table, n) for n in ("c1", "p1", "c2")] == [(3, 1, 0), (4, 2, 0), (8, 2, 2)]
    assert table.loc["c2", "macs"] == 7 * 7 * 3 * 3 * 4 * 8
    assert table.loc["out", "macs"] == 7 * 7 * 8 * 3
    assert table.params.sum() == model.count_params()


def test_macs_of_depthwise_and_separable_convolutions():
    inputs = keras.Input((10, 10, 6))
    x = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="depthwise")(inputs)
    x = keras.layers.SeparableConv2D(5, 3, name="separable")(x)
    x = keras.layers.Conv2D(4, 1, groups=1, name="pointwise")(x)
    table = vggbook.layer_table(keras.Model(inputs, x))
    assert table.loc["depthwise", "macs"] == 10 * 10 * 3 * 3 * 6 * 2
    assert table.loc["separable", "macs"] == 8 * 8 * (3 * 3 * 12 + 12 * 5)
    assert _field(table, "separable") == (5, 1, 1)


def test_layer_table_of_a_model_for_any_image_size_says_what_it_needs():
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(2, 3, strides=2, padding="same")(inputs))
    with pytest.raises(ValueError, match=r"takes images of any size.*keras\.Input\(shape=\(224, 224, 3\)\)"):
        vggbook.layer_table(model)
    x = np.zeros((1, 20, 20, 3), np.float32)
    assert vggbook.feature_maps(model, x)[model.layers[-1].name].shape == (1, 10, 10, 2)  # its maps are fine
