"""Grad-CAM, activation maximisation and ImageNet's class names (vggbook.interpret, chapter "classifier").

Small models only: a VGG16 at width 1/8 on 32×32 inputs with 5 classes (Functional) and a tiny
Sequential convnet. Grad-CAM is checked against tf-keras-vis, an independent implementation.
"""

from __future__ import annotations

import hashlib
import json
import socket

import generic_models
import keras
import numpy as np
import pytest
from tf_keras_vis.gradcam import Gradcam
from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
from tf_keras_vis.utils.scores import CategoricalScore

import vggbook
from vggbook import interpret

layers = keras.layers


@pytest.fixture(scope="module")
def vgg() -> keras.Model:
    return vggbook.build_vgg16(input_shape=(32, 32, 3), width=0.125, classes=5)


@pytest.fixture(scope="module")
def vgg_bn() -> keras.Model:
    return vggbook.build_vgg16(input_shape=(32, 32, 3), width=0.125, classes=5, batch_norm=True, include_top=False)


@pytest.fixture(scope="module")
def tiny() -> keras.Model:
    keras.utils.set_random_seed(1)
    return keras.Sequential(
        [
            keras.Input((16, 16, 3)),
            layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1"),
            layers.MaxPooling2D(name="pool1"),
            layers.Conv2D(16, 3, padding="same", activation="relu", name="conv2"),
            layers.Flatten(name="flatten"),
            layers.Dense(4, activation="softmax", name="predictions"),
        ],
        name="tiny",
    )


def photo(size: int) -> np.ndarray:
    return vggbook.preprocess(vggbook.sample_image("astronaut", size))


def linear_head(model: keras.Model) -> None:
    """What `ReplaceToLinear` does, for a Sequential model: tf-keras-vis 0.8.7 finds the output layers
    through `model.output_names`, which Keras 3's Sequential does not have."""
    model.layers[-1].activation = keras.activations.linear


def reference_cam(model: keras.Model, x: np.ndarray, layer: str, cls: int, *, linear: bool = True) -> np.ndarray:
    """tf-keras-vis' Grad-CAM, aligned with grad_cam: at the layer's resolution (expand_cam=False:
    no zoom to the input size), unnormalised (its own normalisation is min–max, with an epsilon),
    then divided by its maximum as grad_cam does. The softmax is dropped on tf-keras-vis' clone."""
    modifier = (linear_head if isinstance(model, keras.Sequential) else ReplaceToLinear()) if linear else None
    gradcam = Gradcam(model, model_modifier=modifier, clone=True)
    cam = gradcam(CategoricalScore([cls]), x, penultimate_layer=layer, expand_cam=False, normalize_cam=False)
    cam = np.asarray(cam)[0]
    return cam / cam.max() if cam.max() > 0 else cam


@pytest.mark.parametrize(("model_name", "layer", "size"), [("vgg", "block3_conv3", 32), ("tiny", "conv2", 16)])
def test_grad_cam_agrees_with_tf_keras_vis(request, model_name: str, layer: str, size: int) -> None:
    model = request.getfixturevalue(model_name)
    x = photo(size)
    classes = model.output_shape[-1]
    structured = 0
    for cls in range(classes):
        cam = vggbook.grad_cam(model, x, class_index=cls, layer=layer)
        assert cam.shape == tuple(model.get_layer(layer).output.shape[1:3])
        np.testing.assert_allclose(cam, reference_cam(model, x, layer, cls), atol=1e-5)
        structured += cam.max() == 1 and cam.std() > 0.1  # neither all zero nor flat
    assert structured > classes // 2, "too few maps with structure: the comparison would be trivial"


def test_grad_cam_uses_the_pre_softmax_score(vgg) -> None:
    # Through the softmax the maps differ: the agreement above is not a coincidence of the normalisation.
    x = photo(32)
    differs = [
        not np.allclose(
            reference_cam(vgg, x, "block3_conv3", c, linear=False), reference_cam(vgg, x, "block3_conv3", c)
        )
        for c in range(5)
    ]
    assert any(differs)


def test_grad_cam_top_class_batches_and_leaves_the_model_alone(vgg) -> None:
    x = np.concatenate([photo(32), vggbook.preprocess(vggbook.sample_image("coffee", 32))])
    before = vgg.predict(x, verbose=0)
    top = before.argmax(axis=1)
    both = vggbook.grad_cam(vgg, x, layer="block4_conv3")
    assert both.shape == (2, 4, 4)
    for i in range(2):
        np.testing.assert_allclose(both[i], vggbook.grad_cam(vgg, x[i : i + 1], int(top[i]), "block4_conv3"), atol=1e-6)
    mixed = vggbook.grad_cam(vgg, x, class_index=[int(top[0]), (int(top[1]) + 1) % 5], layer="block4_conv3")
    np.testing.assert_allclose(mixed[0], both[0], atol=1e-6)
    assert vgg.get_layer("predictions").activation is keras.activations.softmax
    np.testing.assert_array_equal(vgg.predict(x, verbose=0), before)


@pytest.mark.parametrize(("model_name", "layer", "size"), [("vgg", "block4_conv3", 32), ("tiny", "conv1", 16)])
def test_grad_cam_several_classes_per_image_in_one_call(request, model_name: str, layer: str, size: int) -> None:
    model = request.getfixturevalue(model_name)
    x = np.concatenate([photo(size), vggbook.preprocess(vggbook.sample_image("coffee", size))])
    classes = np.array([[0, 1, 2], [3, 2, 0]])
    cams = vggbook.grad_cam(model, x, class_index=classes, layer=layer)
    side = model.get_layer(layer).output.shape[1]
    assert cams.shape == (2, 3, side, side)
    for k in range(3):  # the same maps as one class per image at a time
        np.testing.assert_allclose(
            cams[:, k], vggbook.grad_cam(model, x, class_index=classes[:, k], layer=layer), atol=1e-5
        )
    assert not np.allclose(cams[0, 0], cams[0, 1])  # and the classes' maps do differ


def test_grad_cam_several_classes_where_a_branch_goes_around_the_layer() -> None:
    # The scores also read the input directly, beside `conv`: the part after `conv` cannot run on its map alone.
    # Keras 3.15 refuses such a sub-model with a ValueError, Keras 3.13 (Colab's) builds it and fails with a bare
    # KeyError when it runs; the helper walks the graph itself and runs the whole network once per class.
    keras.utils.set_random_seed(4)
    inputs = keras.Input((8, 8, 3))
    conv = layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inputs)
    both = layers.Concatenate()([layers.GlobalAveragePooling2D()(conv), layers.GlobalAveragePooling2D()(inputs)])
    model = keras.Model(inputs, layers.Dense(3, activation="softmax")(both))
    assert not interpret._only_through(model, conv, model.layers[-1].input)
    x = np.random.default_rng(0).standard_normal((2, 8, 8, 3)).astype(np.float32)
    classes = np.array([[0, 1], [2, 0]])
    cams = vggbook.grad_cam(model, x, class_index=classes, layer="conv")
    assert cams.shape == (2, 2, 8, 8)
    for k in range(2):  # the same maps as one class per image at a time
        np.testing.assert_allclose(cams[:, k], vggbook.grad_cam(model, x, class_index=classes[:, k], layer="conv"))
    assert not np.allclose(cams[0, 0], cams[0, 1])


def test_only_through_follows_the_graph(vgg, tiny) -> None:
    def through(model: keras.Model, layer: str) -> bool:
        return interpret._only_through(model, model.get_layer(layer).output, model.layers[-1].input)

    assert through(vgg, "block5_conv3") and through(vgg, "block1_conv1") and through(vgg, "fc2")
    assert through(tiny, "conv1")


def test_grad_cam_all_zero_map_is_zero_not_nan() -> None:
    # A ReLU layer whose every unit is dead: no positive evidence anywhere.
    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            layers.Conv2D(4, 3, activation="relu", kernel_initializer="zeros", bias_initializer="zeros", name="dead"),
            layers.Flatten(),
            layers.Dense(3, activation="softmax"),
        ]
    )
    cam = vggbook.grad_cam(model, np.ones((1, 8, 8, 3), np.float32), class_index=0, layer="dead")
    assert cam.shape == (6, 6) and not np.isnan(cam).any() and not cam.any()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"layer": "block9_conv1"}, ValueError, "unknown layer name"),
        ({"layer": "fc1"}, ValueError, "no spatial output"),
        ({"class_index": 5}, ValueError, r"class index \[5\] out of range: the model has 5 classes"),
        ({"class_index": -1}, ValueError, "out of range"),
        ({"class_index": 1.5}, TypeError, "class_index must be an int"),
        ({"class_index": [0, 1, 2]}, ValueError, "3 entries for a batch of 1"),
        ({"class_index": [[0, 1], [2, 3]]}, ValueError, "2 entries for a batch of 1"),
        ({"class_index": [[0, 7]]}, ValueError, r"class index \[7\] out of range"),
        ({"class_index": [[0.5, 1.0]]}, TypeError, r"an \(images, K\) array of ints"),
        ({"class_index": np.zeros((1, 2, 2), int)}, TypeError, "class_index must be an int"),
        ({"x": np.zeros((32, 32, 3))}, ValueError, "expected a preprocessed batch"),
        ({"x": np.zeros((1, 64, 64, 3))}, ValueError, "does not fit model"),
    ],
)
def test_grad_cam_bad_input(vgg, kwargs: dict, error: type, match: str) -> None:
    args = {"x": photo(32), "class_index": None, "layer": "block5_conv3", **kwargs}
    with pytest.raises(error, match=match):
        vggbook.grad_cam(vgg, **args)


def test_grad_cam_needs_a_classifier_head() -> None:
    model = keras.Sequential([keras.Input((8, 8, 3)), layers.Conv2D(2, 3, name="c"), layers.GlobalAveragePooling2D()])
    with pytest.raises(ValueError, match="ending in a Dense or softmax layer"):
        vggbook.grad_cam(model, np.zeros((1, 8, 8, 3)), layer="c")


PLAIN = {"jitter": 0, "scale": 0, "rotate": 0, "decay": 0}  # unregularised gradient ascent


@pytest.mark.parametrize(
    ("model_name", "layer", "filters", "size"),
    [
        ("vgg", "block3_conv3", [0, 5, 9], None),  # the model's own 32×32: a Functional view
        ("vgg", "block5_conv3", [1, 2, 3], 48),  # another size: the layers called as a chain
        ("tiny", "conv2", [0, 1, 2, 3], None),
        ("vgg_bn", "block3_relu3", [0, 1, 2], None),  # the batch-norm variant: a separate ReLU layer
    ],
)
def test_activation_maximisation_raises_the_filters_mean(request, model_name, layer, filters, size) -> None:
    model = request.getfixturevalue(model_name)
    result = vggbook.activation_maximisation(model, layer, filters, size=size, steps=30)
    side = size or model.input_shape[1]
    crop = side - 2 * (side // 8)
    assert result.images.shape == (len(filters), crop, crop, 3) and result.images.dtype == np.uint8
    assert result.inputs.shape == (len(filters), side, side, 3)
    assert np.all(result.start > 0)
    assert np.all(result.final >= 5 * result.start), result.final / result.start
    # `final` is each filter's mean activation on `inputs`, as the model computes it.
    view = keras.Model(model.inputs[0], model.get_layer(layer).output) if size is None else None
    if view is not None:
        means = view(result.inputs).numpy().mean(axis=(1, 2))[np.arange(len(filters)), filters]
        np.testing.assert_allclose(result.final, means, rtol=1e-4)
    # Seeded: the same call gives the same images; another seed gives others.
    again = vggbook.activation_maximisation(model, layer, filters, size=size, steps=30)
    np.testing.assert_array_equal(again.images, result.images)
    other = vggbook.activation_maximisation(model, layer, filters, size=size, steps=30, seed=1)
    assert not np.array_equal(other.images, result.images)


def test_activation_maximisation_wakes_filters_silent_at_the_start(vgg) -> None:
    # Some of block4_conv3's 64 filters are zero everywhere on their seeded starting noise: a plain ReLU
    # would pass them no gradient, the leaky ReLU the ascent climbs does.
    result = vggbook.activation_maximisation(vgg, "block4_conv3", range(64), steps=30, **PLAIN)
    silent = result.start == 0
    assert silent.any()
    assert np.all(result.final[silent] > 0.05), result.final[silent]
    assert np.all(result.final[~silent] >= 5 * result.start[~silent])


def mean_over_shifts(model: keras.Model, layer: str, filters: list[int], x: np.ndarray, jitter: int) -> np.ndarray:
    """Each filter's mean activation averaged over every whole-pixel shift of its image within ±jitter
    (reflected at the edges), as a fraction of the largest over those shifts."""
    view = keras.Model(model.inputs[0], model.get_layer(layer).output)
    found = []
    for dy in range(-jitter, jitter + 1):
        for dx in range(-jitter, jitter + 1):
            shift = np.tile(np.array([1, 0, dx, 0, 1, dy, 0, 0], np.float32), (len(x), 1))
            seen = keras.ops.image.affine_transform(x, shift, interpolation="bilinear", fill_mode="reflect")
            found.append(view(seen).numpy().mean(axis=(1, 2))[np.arange(len(x)), filters])
    found = np.array(found)
    return found.mean(axis=0) / found.max(axis=0)


@pytest.mark.parametrize(
    ("model_name", "layer", "filters"),
    [("vgg", "block3_conv3", [0, 5, 9]), ("vgg", "block5_conv3", [1, 2, 3]), ("tiny", "conv2", [0, 1, 2, 3])],
)
def test_jitter_makes_images_that_work_wherever_they_land(request, model_name, layer, filters) -> None:
    model = request.getfixturevalue(model_name)
    plain = vggbook.activation_maximisation(model, layer, filters, steps=64, **PLAIN)
    jittered = vggbook.activation_maximisation(model, layer, filters, steps=64, **{**PLAIN, "jitter": 2})
    # What jitter is for: shifted by up to ±2 pixels, its images keep more of their activation than plain ascent's.
    kept_plain = mean_over_shifts(model, layer, filters, plain.inputs, 2)
    kept_jittered = mean_over_shifts(model, layer, filters, jittered.inputs, 2)
    assert np.all(kept_jittered > kept_plain), (kept_jittered, kept_plain)
    # And they are other images, not the plain ones moved by a few pixels.
    for a, b in zip(plain.inputs, jittered.inputs, strict=True):
        best = max(
            np.corrcoef(np.roll(a, (dy, dx), axis=(0, 1)).ravel(), b.ravel())[0, 1]
            for dy in range(-2, 3)
            for dx in range(-2, 3)
        )
        assert best < 0.9, best


def high_frequency_share(images: np.ndarray) -> np.ndarray:
    """Per image, the share of the (grey, mean-removed) image's spectral energy above a quarter of the
    sampling frequency, i.e. in patterns finer than 4 pixels."""
    grey = images.astype(np.float64).mean(axis=-1)
    grey -= grey.mean(axis=(1, 2), keepdims=True)
    power = np.abs(np.fft.fft2(grey)) ** 2
    fy, fx = np.meshgrid(np.fft.fftfreq(grey.shape[1]), np.fft.fftfreq(grey.shape[2]), indexing="ij")
    return (power * (np.hypot(fx, fy) > 0.25)).sum(axis=(1, 2)) / power.sum(axis=(1, 2))


@pytest.mark.parametrize(("layer", "filters"), [("block3_conv3", [0, 5, 9]), ("block5_conv3", [1, 2, 3])])
def test_decay_keeps_the_high_frequencies_down(vgg, layer, filters) -> None:
    plain = vggbook.activation_maximisation(vgg, layer, filters, steps=64, **PLAIN)
    smooth = vggbook.activation_maximisation(vgg, layer, filters, steps=64, **{**PLAIN, "decay": 1.0})
    assert np.all(high_frequency_share(smooth.images) < 0.8 * high_frequency_share(plain.images))
    assert np.all(smooth.final >= 5 * smooth.start)  # and it still climbs


def test_random_transforms_are_the_ones_asked_for() -> None:
    rng = np.random.default_rng(0)
    shifts = interpret._random_transforms(rng, 500, 32, jitter=3, scale=0, rotate=0)
    np.testing.assert_array_equal(shifts[:, [0, 1, 3, 4]], np.tile([1, 0, 0, 1], (500, 1)))
    assert set(np.unique(shifts[:, [2, 5]])) == set(range(-3, 4))  # whole pixels, every one of ±3
    turned = interpret._random_transforms(rng, 500, 32, jitter=0, scale=0.1, rotate=10)
    zoom = 1 / np.hypot(turned[:, 0], turned[:, 3])
    angle = np.rad2deg(np.arctan2(turned[:, 3], turned[:, 0]))
    assert 0.9 <= zoom.min() < 0.92 and 1.08 < zoom.max() <= 1.1
    assert -10 <= angle.min() < -9 and 9 < angle.max() <= 10
    # The centre stays where it is (before the shift): rotation and zoom are about the image's centre.
    centre = 15.5
    x = turned[:, 0] * centre + turned[:, 1] * centre + turned[:, 2]
    y = turned[:, 3] * centre + turned[:, 4] * centre + turned[:, 5]
    np.testing.assert_allclose(np.stack([x, y]), centre, atol=1e-4)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"layer": "nope"}, ValueError, "unknown layer name"),
        ({"layer": "fc2"}, ValueError, "no spatial output"),
        ({"filters": [64]}, ValueError, r"filter index out of range: 'block3_conv3' has 32 channels"),
        ({"filters": []}, TypeError, "non-empty sequence of channel indices"),
        ({"filters": [0.5]}, TypeError, "non-empty sequence of channel indices"),
        ({"border": 16}, ValueError, "border must be between 0 and 15"),
        ({"steps": 0}, ValueError, "steps must be at least 1"),
        ({"size": 0}, ValueError, "size must be a positive number of pixels"),
        ({"jitter": 16}, ValueError, "jitter must be a whole number of pixels between 0 and 15"),
        ({"jitter": 1.5}, ValueError, "jitter must be a whole number of pixels"),
        ({"scale": 0.5}, ValueError, "scale must be a fraction between 0 and 0.5"),
        ({"rotate": -1}, ValueError, "rotate must be between 0 and 45 degrees"),
        ({"decay": 5}, ValueError, "decay must be between 0"),
    ],
)
def test_activation_maximisation_bad_input(vgg, kwargs: dict, error: type, match: str) -> None:
    args = {"layer": "block3_conv3", "filters": [0], **kwargs}
    with pytest.raises(error, match=match):
        vggbook.activation_maximisation(vgg, args.pop("layer"), args.pop("filters"), **args)


def test_activation_maximisation_other_size_needs_a_chain() -> None:
    inputs = keras.Input((16, 16, 3))
    a = layers.Conv2D(4, 3, padding="same", activation="relu", name="a")(inputs)
    b = layers.Conv2D(4, 3, padding="same", activation="relu", name="b")(inputs)
    merged = layers.Add(name="merged")([a, b])
    model = keras.Model(inputs, layers.Conv2D(4, 3, padding="same", name="c")(merged))
    with pytest.raises(ValueError, match="form a chain"):
        vggbook.activation_maximisation(model, "c", [0], size=24)
    assert vggbook.activation_maximisation(model, "c", [0], steps=2).images.shape == (1, 12, 12, 3)


def write_class_index(keras_home, index) -> str:
    models = keras_home / "models"
    models.mkdir(parents=True)
    path = models / "imagenet_class_index.json"
    path.write_text(json.dumps(index))
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_class_names_offline_fail_fast_without_the_network(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setenv("VGGBOOK_OFFLINE", "1")

    def no_network(*args, **kwargs):
        raise AssertionError("imagenet_class_names tried the network although VGGBOOK_OFFLINE is set")

    monkeypatch.setattr(socket, "create_connection", no_network)
    with pytest.raises(vggbook.WeightsError, match="imagenet_class_index.json is not in the Keras cache"):
        vggbook.imagenet_class_names()
    with pytest.raises(vggbook.WeightsError, match="downloading is off"):
        vggbook.imagenet_class_names(download=False)


def test_class_names_from_the_keras_cache_and_top_k(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setenv("VGGBOOK_OFFLINE", "1")
    index = {"0": ["n01440764", "tench"], "1": ["n01443537", "goldfish"], "2": ["n01484850", "great_white_shark"]}
    monkeypatch.setattr(interpret, "CLASS_INDEX_MD5", write_class_index(tmp_path, index))
    names = vggbook.imagenet_class_names()
    assert names == ["tench", "goldfish", "great_white_shark"]
    probabilities = np.array([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])
    assert vggbook.top_k_classes(probabilities, k=2, names=names) == [
        [(2, "great_white_shark", 0.5), (1, "goldfish", 0.3)],
        [(0, "tench", 0.6), (1, "goldfish", 0.3)],
    ]
    assert vggbook.top_k_classes(probabilities, k=1) == [[(2, "class 2", 0.5)], [(0, "class 0", 0.6)]]


def test_class_names_checks_the_md5_and_the_format(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    index = {"0": ["n01440764", "tench"], "2": ["n01484850", "great_white_shark"]}
    digest = write_class_index(tmp_path, index)
    with pytest.raises(vggbook.WeightsError, match="md5 is not"):
        vggbook.imagenet_class_names(download=False)
    assert not (tmp_path / "models" / "imagenet_class_index.json").exists()  # the bad file is not kept
    (tmp_path / "models").rmdir()
    assert write_class_index(tmp_path, index) == digest
    monkeypatch.setattr(interpret, "CLASS_INDEX_MD5", digest)
    with pytest.raises(vggbook.WeightsError, match="is not a class index"):  # class "1" is missing
        vggbook.imagenet_class_names()


@pytest.mark.parametrize(
    ("probabilities", "kwargs", "match"),
    [
        (np.ones(3) / 3, {}, r"shape \(N, classes\)"),
        (np.ones((1, 3)) / 3, {"k": 4}, "k must be between 1 and 3"),
        (np.ones((1, 3)) / 3, {"k": 1, "names": ["a", "b"]}, "2 class names for 3 classes"),
    ],
)
def test_top_k_bad_input(probabilities, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        vggbook.top_k_classes(probabilities, **kwargs)


# ---------------------------------------------------------------------------------------------
# Any Keras classifier (chapter "your_model")


def test_grad_cam_defaults_to_the_last_convolution(vgg, tiny) -> None:
    assert interpret.last_convolution(vgg) == "block5_conv3"
    assert interpret.last_convolution(tiny) == "conv2"
    x = photo(32)
    np.testing.assert_array_equal(vggbook.grad_cam(vgg, x), vggbook.grad_cam(vgg, x, layer="block5_conv3"))
    np.testing.assert_array_equal(vggbook.grad_cam(tiny, photo(16), 1), vggbook.grad_cam(tiny, photo(16), 1, "conv2"))
    dense_only = keras.Sequential([keras.Input((8, 8, 3)), layers.Flatten(), layers.Dense(2, activation="softmax")])
    with pytest.raises(ValueError, match="has no convolution: pass layer="):
        vggbook.grad_cam(dense_only, np.zeros((1, 8, 8, 3)))


@pytest.fixture(scope="module")
def residual() -> keras.Model:
    keras.utils.set_random_seed(2)
    return generic_models.small_residual(classes=4)


def test_grad_cam_of_a_residual_network_agrees_with_tf_keras_vis(residual) -> None:
    x = photo(176)
    structured = 0
    # convolutions, which is where tf-keras-vis looks (it seeks the last Conv layer at or before the one named)
    for layer in ("b_1_conv", "down_conv"):
        for cls in range(4):
            cam = vggbook.grad_cam(residual, x, class_index=cls, layer=layer)
            np.testing.assert_allclose(cam, reference_cam(residual, x, layer, cls), atol=1e-5)
            structured += cam.max() == 1 and cam.std() > 0.1
    assert structured > 4, "too few maps with structure: the comparison would be trivial"


def test_grad_cam_of_an_unbuilt_sequential_builds_it() -> None:
    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [
            layers.Conv2D(6, 3, activation="relu", name="c1"),
            layers.MaxPooling2D(),
            layers.Conv2D(8, 3, name="c2"),
            layers.GlobalAveragePooling2D(),
            layers.Dense(3),
        ]  # fmt: skip
    )
    x = photo(24)
    cam = vggbook.grad_cam(model, x, class_index=2)  # scores without softmax: the Dense layer's own output
    assert cam.shape == (9, 9) and model.input_shape == (None, 24, 24, 3)
    erf = vggbook.effective_receptive_field(keras.Sequential([layers.Conv2D(2, 5, name="c")]), x, "c")
    assert erf.shape == (24, 24)


@pytest.fixture(scope="module")
def resnet50():
    return generic_models.resnet50(), vggbook.preprocess(vggbook.sample_image("chelsea"))


def test_grad_cam_of_resnet50(resnet50) -> None:
    model, x = resnet50
    assert interpret.last_convolution(model) == "conv5_block3_3_conv"  # the default layer
    cam = vggbook.grad_cam(model, x)
    assert cam.shape == (7, 7) and 0 <= cam.min() and cam.max() <= 1
    # the last convolution reaches the scores through the Add, beside the shortcut: several classes at once need a
    # layer through which everything passes, such as the block's output, to run the network once up to it; at the
    # last convolution the helper runs the whole network once per class, and both give one class's maps
    last = model.get_layer("conv5_block3_3_conv").output
    assert not interpret._only_through(model, last, model.layers[-1].input)
    assert interpret._only_through(model, model.get_layer("conv5_block3_out").output, model.layers[-1].input)
    for layer, pair in (("conv5_block3_3_conv", [0, 2]), ("conv5_block3_out", [3, 7])):  # pairs with maps
        both = vggbook.grad_cam(model, x, class_index=[pair], layer=layer)
        for k, c in enumerate(pair):
            np.testing.assert_allclose(both[0, k], vggbook.grad_cam(model, x, c, layer), atol=1e-5)
        assert both.max(axis=(2, 3)).min() == 1 and not np.allclose(both[0, 0], both[0, 1])


def test_effective_receptive_field_of_resnet50_stays_in_the_layer_tables_box(resnet50) -> None:
    model, x = resnet50
    table = vggbook.layer_table(model)
    for layer, row, col in (("conv2_block1_add", 20, 30), ("conv3_block4_out", 14, 14), ("conv3_block4_out", 0, 27)):
        erf = vggbook.effective_receptive_field(model, x, layer, row, col)
        x0, y0, x1, y1 = vggbook.receptive_field_box(table, layer, row, col, 224)
        inside = np.zeros_like(erf, dtype=bool)
        inside[y0 : y1 + 1, x0 : x1 + 1] = True
        assert erf[inside].max() > 0 and not erf[~inside].any(), layer


def test_grad_cam_returns_the_scores_it_explained(vgg) -> None:
    x = np.concatenate([photo(32), vggbook.preprocess(vggbook.sample_image("coffee", 32))])
    logits = keras.Model(vgg.input, vgg.get_layer("predictions").input)(x)
    head = vgg.get_layer("predictions")
    expected = keras.ops.convert_to_numpy(logits @ head.kernel + head.bias)
    cams, scores = vggbook.grad_cam(vgg, x, layer="block4_conv3", return_scores=True)
    np.testing.assert_allclose(cams, vggbook.grad_cam(vgg, x, layer="block4_conv3"), atol=1e-6)
    np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-5)
    one, first = vggbook.grad_cam(vgg, x[:1], class_index=2, layer="block4_conv3", return_scores=True)
    assert one.shape == (4, 4) and first.shape == (5,)
    np.testing.assert_allclose(first, expected[0], rtol=1e-4, atol=1e-5)
    several, per_image = vggbook.grad_cam(
        vgg, x, class_index=np.array([[0, 1], [2, 3]]), layer="block4_conv3", return_scores=True
    )
    assert several.shape == (2, 2, 4, 4) and per_image.shape == (2, 5)
    np.testing.assert_allclose(per_image, expected, rtol=1e-4, atol=1e-5)


def test_mass_on_mask() -> None:
    heat = np.array([[1.0, 3.0], [0.0, 0.0]])
    assert vggbook.mass_on_mask(heat, np.array([[True, False], [False, False]])) == pytest.approx(0.25)
    # a mask at 4× the map's resolution: each position counts the share of its patch inside
    fine = np.zeros((8, 8))
    fine[:4, 4:6] = 1  # half of the top-right position's patch
    assert vggbook.mass_on_mask(heat, fine) == pytest.approx(3 * 0.5 / 4)
    # batches broadcast, an empty map is nan or, if asked, a uniform map's share
    maps = np.stack([heat, np.zeros((2, 2))])
    shares = vggbook.mass_on_mask(maps, fine)
    assert shares.shape == (2,) and shares[0] == pytest.approx(0.375) and np.isnan(shares[1])
    uniform = vggbook.mass_on_mask(maps, fine, empty_as_uniform=True)
    assert uniform[1] == pytest.approx(fine.mean())
    with pytest.raises(ValueError, match="does not split"):
        vggbook.mass_on_mask(heat, np.ones((5, 5)))
