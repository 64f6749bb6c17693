"""vggbook.features: every conv and pool output from one forward pass, with clear errors."""

from __future__ import annotations

import generic_models
import keras
import numpy as np
import pytest

import vggbook

VGG16_SHOWN = [
    "block1_conv1",
    "block1_conv2",
    "block1_pool",
    "block2_conv1",
    "block2_conv2",
    "block2_pool",
    "block3_conv1",
    "block3_conv2",
    "block3_conv3",
    "block3_pool",
    "block4_conv1",
    "block4_conv2",
    "block4_conv3",
    "block4_pool",
    "block5_conv1",
    "block5_conv2",
    "block5_conv3",
    "block5_pool",
]


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(0).normal(0, 50, (2, 32, 32, 3)).astype(np.float32)


def test_default_layers_of_vgg16(vgg16_small):
    assert vggbook.default_layers(vgg16_small) == VGG16_SHOWN


def test_every_conv_and_pool_with_the_right_shapes(vgg16_small, x):
    maps = vggbook.feature_maps(vgg16_small, x)
    assert list(maps) == VGG16_SHOWN
    # width 1/8: 8, 16, 32, 64, 64 channels; 32×32 input halved by each pool
    assert maps["block1_conv1"].shape == (2, 32, 32, 8)
    assert maps["block1_pool"].shape == (2, 16, 16, 8)
    assert maps["block2_conv2"].shape == (2, 16, 16, 16)
    assert maps["block3_conv3"].shape == (2, 8, 8, 32)
    assert maps["block4_pool"].shape == (2, 2, 2, 64)
    assert maps["block5_pool"].shape == (2, 1, 1, 64)
    assert all(isinstance(v, np.ndarray) for v in maps.values())
    assert all(v.min() >= 0 for v in maps.values())  # post-ReLU and pools of post-ReLU


def test_values_equal_a_separate_model(vgg16_small, x):
    maps = vggbook.feature_maps(vgg16_small, x)
    for name in ("block3_conv2", "block5_pool"):
        probe = keras.Model(vgg16_small.inputs, vgg16_small.get_layer(name).output)
        expected = probe.predict(x, verbose=0)
        np.testing.assert_allclose(maps[name], expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())
        assert np.abs(expected).max() > 0


def test_the_last_map_equals_the_model_output(vgg16_small, x):
    maps = vggbook.feature_maps(vgg16_small, x, ["block5_pool"])
    np.testing.assert_allclose(maps["block5_pool"], keras.ops.convert_to_numpy(vgg16_small(x)), rtol=1e-5, atol=1e-4)


def test_chosen_layers_in_the_order_asked(vgg16_small, x):
    maps = vggbook.feature_maps(vgg16_small, x, ["block2_pool", "block1_conv1"])
    assert list(maps) == ["block2_pool", "block1_conv1"]
    one = vggbook.feature_maps(vgg16_small, x, "block1_conv1")  # a single name is fine too
    assert list(one) == ["block1_conv1"]
    np.testing.assert_array_equal(one["block1_conv1"], maps["block1_conv1"])


def test_repeated_calls_give_the_same_values(vgg16_small, x):
    first = vggbook.feature_maps(vgg16_small, x)
    second = vggbook.feature_maps(vgg16_small, x)
    for name in VGG16_SHOWN:
        np.testing.assert_array_equal(first[name], second[name])


def test_batch_norm_variant_shows_the_relu_outputs():
    model = vggbook.build_vgg16(width=0.125, input_shape=(32, 32, 3), include_top=False, batch_norm=True)
    names = vggbook.default_layers(model)
    assert len(names) == 18
    assert names[:3] == ["block1_relu1", "block1_relu2", "block1_pool"]
    maps = vggbook.feature_maps(model, np.zeros((1, 32, 32, 3), np.float32))
    assert maps["block1_relu1"].shape == (1, 32, 32, 8)


def test_unknown_layer_lists_the_valid_names(vgg16_small, x):
    with pytest.raises(ValueError, match=r"unknown layer name\(s\) \['block6_conv1'\]") as err:
        vggbook.feature_maps(vgg16_small, x, ["block1_conv1", "block6_conv1"])
    assert "block5_pool" in str(err.value) and "block1_conv1" in str(err.value)


def test_unbatched_image_says_preprocess(vgg16_small):
    image = np.zeros((32, 32, 3), np.uint8)
    with pytest.raises(ValueError, match=r"vggbook\.preprocess"):
        vggbook.feature_maps(vgg16_small, image)


def test_wrong_size_input_is_named(vgg16_small):
    with pytest.raises(ValueError, match=r"\(1, 64, 64, 3\) does not fit model 'vgg16', which takes \(N, 32, 32, 3\):"):
        vggbook.feature_maps(vgg16_small, np.zeros((1, 64, 64, 3), np.float32))
    with pytest.raises(ValueError, match="does not fit"):
        vggbook.feature_maps(vgg16_small, np.zeros((1, 32, 32, 1), np.float32))


# ---------------------------------------------------------------------------------------------
# Any Keras image model (chapter "your_model")

layers = keras.layers


def small_stack() -> list[keras.layers.Layer]:
    """A small CNN's layers: conv with its ReLU, pool, conv → batch norm → ReLU, conv without activation, head."""
    return [
        layers.Conv2D(4, 3, padding="same", activation="relu", name="conv1"),
        layers.MaxPooling2D(name="pool1"),
        layers.Conv2D(6, 3, padding="same", name="conv2"),
        layers.BatchNormalization(name="bn2"),
        layers.ReLU(name="relu2"),
        layers.Conv2D(8, 3, name="conv3"),
        layers.GlobalAveragePooling2D(name="gap"),
        layers.Dense(3, activation="softmax", name="predictions"),
    ]


SMALL_SHOWN = ["conv1", "pool1", "relu2", "conv3"]


def _check_small_maps(model: keras.Model, x: np.ndarray) -> None:
    maps = vggbook.feature_maps(model, x)
    assert list(maps) == SMALL_SHOWN
    assert [m.shape for m in maps.values()] == [(2, 32, 32, 4), (2, 16, 16, 4), (2, 16, 16, 6), (2, 14, 14, 8)]
    for name in SMALL_SHOWN:
        expected = keras.Model(model.inputs[0], model.get_layer(name).output).predict(x, verbose=0)
        np.testing.assert_allclose(maps[name], expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())
    assert maps["conv3"].min() < 0 < maps["conv3"].max()  # a convolution without activation: its raw output


def test_sequential_with_input(x):
    model = keras.Sequential([keras.Input((32, 32, 3)), *small_stack()])
    assert vggbook.default_layers(model) == SMALL_SHOWN
    _check_small_maps(model, x)


def test_sequential_without_input_is_built_on_the_batch(x):
    model = keras.Sequential(small_stack())
    with pytest.raises(ValueError, match=r"has not been built yet.*keras\.Input\(shape=\(224, 224, 3\)\).*build"):
        vggbook.default_layers(model)
    _check_small_maps(model, x)  # feature_maps builds it for the batch's image size, any batch size
    assert model.input_shape == (None, 32, 32, 3)
    assert vggbook.default_layers(model) == SMALL_SHOWN
    assert vggbook.feature_maps(model, x[:1])["conv3"].shape == (1, 14, 14, 8)


def test_sequential_built_or_called_before(x):
    built = keras.Sequential(small_stack())
    built.build((None, 32, 32, 3))
    _check_small_maps(built, x)
    called = keras.Sequential(small_stack())
    called(x[:1])  # its input is now fixed to a batch of one; the helper still takes any batch
    _check_small_maps(called, x)


def test_a_sequential_built_for_another_size_says_so(x):
    model = keras.Sequential(small_stack())
    model.build((None, 64, 64, 3))
    with pytest.raises(ValueError, match=r"\(2, 32, 32, 3\) does not fit model"):
        vggbook.feature_maps(model, x)


def test_functional_model_with_a_branch(x):
    inputs = keras.Input((32, 32, 3))
    stem = layers.Conv2D(8, 3, padding="same", name="stem")(inputs)  # read by two layers: shown as it is
    a = layers.Activation("relu", name="a_relu")(layers.BatchNormalization(name="a_bn")(stem))
    b = layers.SeparableConv2D(8, 3, padding="same", activation="relu", name="b")(stem)
    added = layers.Add(name="add")([a, b])
    down = layers.DepthwiseConv2D(3, strides=2, padding="same", name="down")(added)
    model = keras.Model(inputs, layers.AveragePooling2D(2, name="avg")(layers.ReLU(name="down_relu")(down)))
    assert vggbook.default_layers(model) == ["stem", "b", "down_relu", "avg"]
    maps = vggbook.feature_maps(model, x)
    assert maps["down_relu"].shape == (2, 16, 16, 8) and maps["avg"].shape == (2, 8, 8, 8)
    np.testing.assert_allclose(maps["avg"], model.predict(x, verbose=0), rtol=1e-5, atol=1e-5)
    assert vggbook.feature_maps(model, x, ["add"])["add"].shape == (2, 32, 32, 8)


def test_resnet50_every_convolution_and_the_pool():
    model = generic_models.resnet50()
    maps = generic_models.resnet50_maps()
    convs = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert len(convs) == 53
    assert list(maps) == vggbook.default_layers(model)
    assert len(maps) == 54 and [n for n in maps if n.endswith("_pool")] == ["pool1_pool"]
    # one map per convolution: conv → BN → ReLU shows the ReLU; a convolution whose BN meets the shortcut in the
    # Add shows its own output
    shown = [n for n in maps if n != "pool1_pool"]
    assert [n.replace("_relu", "_conv") for n in shown] == convs
    assert sum(n.endswith("_relu") for n in shown) == 1 + 2 * 16 and "conv5_block3_3_conv" in shown
    assert maps["conv1_relu"].shape == (1, 112, 112, 64) and maps["conv5_block3_3_conv"].shape == (1, 7, 7, 2048)
    assert maps["conv2_block1_1_relu"].min() >= 0 and maps["conv5_block3_3_conv"].min() < 0
    probe = keras.Model(model.inputs[0], model.get_layer("conv3_block1_2_relu").output)
    expected = probe.predict(vggbook.preprocess(vggbook.sample_image("chelsea")), verbose=0)
    np.testing.assert_allclose(maps["conv3_block1_2_relu"], expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_unknown_layer_in_a_big_model_suggests_close_names():
    model = generic_models.resnet50()
    with pytest.raises(ValueError) as err:
        vggbook.feature_maps(model, np.zeros((1, 224, 224, 3), np.float32), ["conv2_block1_addd"])
    message = str(err.value)
    assert "did you mean conv2_block1_add" in message and "177 layers" in message
    assert "conv5_block3_out" not in message and len(message) < 400  # no list of all 177 names


def test_a_model_without_convolutions_needs_layers_named(x):
    model = keras.Sequential([keras.Input((32, 32, 3)), layers.Flatten(name="flat"), layers.Dense(2, name="out")])
    assert vggbook.default_layers(model) == []
    with pytest.raises(ValueError, match=r"has no convolution or pooling layer to show: pass layers="):
        vggbook.feature_maps(model, x)
    assert vggbook.feature_maps(model, x, ["flat"])["flat"].shape == (2, 32 * 32 * 3)


def test_inputs_of_the_wrong_kind_are_named(x):
    model = keras.Sequential([keras.Input((32, 32, 3)), *small_stack()])
    with pytest.raises(ValueError, match=r"a batch of numbers, got an array of dtype <U1"):
        vggbook.feature_maps(model, np.full((1, 32, 32, 3), "a"))
    with pytest.raises(ValueError, match="dtype bool"):
        vggbook.feature_maps(model, x > 0)
    with pytest.raises(ValueError, match=r"vggbook\.preprocess"):
        vggbook.feature_maps(keras.Sequential(small_stack()), x[0])  # one image, not a batch, on an unbuilt model
    with pytest.raises(TypeError, match="expected a Keras model"):
        vggbook.feature_maps(small_stack()[0], x)


def test_models_the_helper_cannot_read_are_named(x):
    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.conv = layers.Conv2D(2, 3)

        def call(self, inputs):
            return self.conv(inputs)

    subclassed = Subclassed()
    subclassed(x)
    with pytest.raises(ValueError, match=r"subclassed keras\.Model.*Functional.*Sequential"):
        vggbook.feature_maps(subclassed, x)
    a, b = keras.Input((32, 32, 3)), keras.Input((32, 32, 3))
    two = keras.Model([a, b], layers.Add()([layers.Conv2D(2, 3)(a), layers.Conv2D(2, 3)(b)]))
    with pytest.raises(ValueError, match="takes 2 inputs; the helper's figures need one image input"):
        vggbook.feature_maps(two, x)
    flat = keras.Sequential([keras.Input((12,)), layers.Dense(2)])
    with pytest.raises(ValueError, match=r"inputs of shape \(None, 12\).*\(N, height, width, channels\)"):
        vggbook.default_layers(flat)


def test_a_wrong_size_names_the_fix(vgg16_small):
    with pytest.raises(
        ValueError, match=r"make 32×32 images, e\.g\. vggbook\.preprocess\(vggbook\.load_image\(path, size=32"
    ):
        vggbook.feature_maps(vgg16_small, np.zeros((1, 64, 64, 3), np.float32))
    with pytest.raises(ValueError, match="it reads images of 3 channels"):
        vggbook.feature_maps(vgg16_small, np.zeros((1, 32, 32, 1), np.float32))
