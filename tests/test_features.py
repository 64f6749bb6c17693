"""vggbook.features: every conv and pool output from one forward pass, with clear errors."""

from __future__ import annotations

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
    with pytest.raises(ValueError, match=r"\(1, 64, 64, 3\) does not fit model 'vgg16'"):
        vggbook.feature_maps(vgg16_small, np.zeros((1, 64, 64, 3), np.float32))
    with pytest.raises(ValueError, match="does not fit"):
        vggbook.feature_maps(vgg16_small, np.zeros((1, 32, 32, 1), np.float32))
