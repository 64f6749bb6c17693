"""The transfer chapter's helpers: the offline texture set, the spectrum feature, the linear classifier, pooled
features in slices, trainable-parameter counts and copies of a base's top layers."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import vggbook


@pytest.fixture(scope="module")
def small() -> vggbook.TransferData:
    return vggbook.transfer_dataset(16, 8, 40, size=48, seed=5)


def test_dataset_is_deterministic_balanced_and_shaped(small: vggbook.TransferData) -> None:
    again = vggbook.transfer_dataset(16, 8, 40, size=48, seed=5)
    for name in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(small, name), getattr(again, name), err_msg=name)
    other = vggbook.transfer_dataset(16, 8, 40, size=48, seed=6)
    assert not np.array_equal(small.x_train, other.x_train)
    assert small.class_names == vggbook.TEXTURES == ("stripes", "checks", "dots", "speckles")
    for split, n in (("train", 16), ("val", 8), ("test", 40)):
        x, y = getattr(small, f"x_{split}"), getattr(small, f"y_{split}")
        assert x.shape == (n, 48, 48, 3) and x.dtype == np.uint8
        assert np.bincount(y, minlength=4).tolist() == [n // 4] * 4
    # the three splits are independent streams: no image repeats across them
    assert not any(np.array_equal(a, b) for a in small.x_train for b in small.x_test)


def test_the_classes_differ_in_texture_not_in_colour() -> None:
    data = vggbook.transfer_dataset(64, 4, 100, size=64, seed=0)
    spectrum = vggbook.train_linear(vggbook.radial_spectrum(data.x_train), data.y_train, classes=4)
    assert spectrum.accuracy(vggbook.radial_spectrum(data.x_test), data.y_test) > 0.45  # chance: 0.25

    def colour(x: np.ndarray) -> np.ndarray:
        return x.reshape(len(x), -1, 3).mean(axis=1)

    by_colour = vggbook.train_linear(colour(data.x_train), data.y_train, classes=4)
    assert by_colour.accuracy(colour(data.x_test), data.y_test) < 0.45


@pytest.mark.parametrize(
    "kwargs",
    [dict(train=10), dict(val=0), dict(test=-4), dict(train=8.0), dict(size=16)],
)
def test_dataset_rejects_bad_splits(kwargs: dict) -> None:
    with pytest.raises(ValueError, match="must be"):
        vggbook.transfer_dataset(**kwargs)


def test_radial_spectrum_shape_and_errors(small: vggbook.TransferData) -> None:
    features = vggbook.radial_spectrum(small.x_train, bins=12)
    assert features.shape == (16, 12) and np.isfinite(features).all()
    with pytest.raises(ValueError, match="square RGB"):
        vggbook.radial_spectrum(small.x_train[..., 0])
    with pytest.raises(ValueError, match="square RGB"):
        vggbook.radial_spectrum(small.x_train[:, :40])


def test_linear_classifier_separates_a_separable_set_and_checks_its_input() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 3, (3, 5))
    labels = np.repeat(np.arange(3), 30)
    x = centres[labels] + rng.normal(0, 0.5, (90, 5))
    model = vggbook.train_linear(x[::2], labels[::2])
    assert model.accuracy(x[1::2], labels[1::2]) > 0.9
    assert model.params == 5 * 3 + 3
    with pytest.raises(ValueError, match="integer labels"):
        vggbook.train_linear(x, labels[:-1])
    with pytest.raises(ValueError, match="integer labels"):
        vggbook.train_linear(x, labels.astype(float))
    with pytest.raises(ValueError, match="must lie in"):
        vggbook.train_linear(x, labels, classes=2)
    with pytest.raises(ValueError, match=r"shape \(N, D\)"):
        vggbook.train_linear(x[0], labels[:1])
    with pytest.raises(ValueError, match=r"shape \(N, 5\)"):
        model.predict(x[:, :4])


def _tiny_base() -> keras.Model:
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="c1")(inputs)
    x = keras.layers.MaxPooling2D(name="p1")(x)
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="c2")(x)
    x = keras.layers.MaxPooling2D(name="p2")(x)
    return keras.Model(inputs, x)


def test_pooled_features_match_one_pass_in_any_slices() -> None:
    base = _tiny_base()
    x = np.random.default_rng(1).normal(size=(7, 16, 16, 3)).astype("float32")
    whole = vggbook.feature_maps(base, x, ["p1", "p2"])
    sliced = vggbook.pooled_features(base, x, ["p1", "p2"], pool=False, batch_size=3)
    pooled = vggbook.pooled_features(base, x, ["p2"], batch_size=2)
    np.testing.assert_allclose(sliced["p1"], whole["p1"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pooled["p2"], whole["p2"].mean(axis=(1, 2)), rtol=1e-5, atol=1e-6)
    assert pooled["p2"].shape == (7, 6)
    mixed = vggbook.pooled_features(base, x, ["p1", "p2"], pool=["p1"], batch_size=4)
    assert mixed["p1"].shape == (7, 4) and mixed["p2"].shape == whole["p2"].shape
    with pytest.raises(ValueError, match="not requested"):
        vggbook.pooled_features(base, x, ["p1"], pool=["p2"])
    with pytest.raises(ValueError, match="batch of images"):
        vggbook.pooled_features(base, x[0], ["p1"])
    with pytest.raises(ValueError, match="batch_size"):
        vggbook.pooled_features(base, x, ["p1"], batch_size=0)


def test_clone_top_copies_weights_and_leaves_the_base_alone() -> None:
    base = _tiny_base()
    x = np.random.default_rng(2).normal(size=(4, 16, 16, 3)).astype("float32")
    top = vggbook.clone_top(base, "c2")
    p1 = vggbook.feature_maps(base, x, ["p1"])["p1"]
    np.testing.assert_allclose(np.asarray(top(p1)), np.asarray(base(x)), rtol=1e-5, atol=1e-6)
    assert vggbook.count_trainable(top) == 3 * 3 * 4 * 6 + 6
    top.get_layer("c2").kernel.assign(np.zeros((3, 3, 4, 6), "float32"))
    assert np.abs(base.get_layer("c2").kernel.numpy()).sum() > 0
    base.get_layer("c1").trainable = False
    assert vggbook.count_trainable(base) == 3 * 3 * 4 * 6 + 6
    with pytest.raises(ValueError, match="no layer"):
        vggbook.clone_top(base, "block5_conv1")


@pytest.mark.parametrize("features", [30, 200])  # fewer features than images, and more (solved in their span)
def test_train_linear_reaches_the_unique_minimum_whatever_the_start_or_the_scale(features: int) -> None:
    rng = np.random.default_rng(3)
    x, y = rng.normal(2, 3, (40, features)), rng.integers(0, 3, 40)
    model = vggbook.train_linear(x, y, classes=3, l2=0.05, seed=4)
    # the gradient of the mean cross-entropy + l2·‖W‖²/2, computed here on the standardised features, is zero
    z = (x - x.mean(axis=0)) / x.std(axis=0)
    logits = z @ model.weights + model.bias
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    error = (p / p.sum(axis=1, keepdims=True) - np.eye(3)[y]) / len(z)
    assert np.abs(z.T @ error + 0.05 * model.weights).max() < 1e-4
    assert np.abs(error.sum(axis=0)).max() < 1e-4
    # a strictly convex problem: another start, or the features times 255, give the same classifier
    for other, seen in (
        (vggbook.train_linear(x, y, classes=3, l2=0.05, seed=9), x),
        (vggbook.train_linear(255 * x, y, classes=3, l2=0.05), 255 * x),
    ):
        np.testing.assert_allclose(other.weights, model.weights, atol=1e-4)
        np.testing.assert_array_equal(other.predict(seen), model.predict(x))
    with pytest.raises(ValueError, match="l2 must be positive"):
        vggbook.train_linear(x, y, l2=0)


def _compiled(seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3)])
    model.compile(keras.optimizers.Adam(0.05), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def test_restart_trains_as_a_newly_compiled_model_does_without_a_new_trace() -> None:
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(32, 5)).astype("float32"), rng.integers(0, 3, 32)
    start = _compiled(0).get_weights()

    fresh = _compiled(1)  # a new model, compiled, from `start`: the reference
    fresh.set_weights(start)
    fresh.fit(x, y, epochs=3, batch_size=8, shuffle=False, verbose=0)

    again = _compiled(2)
    with pytest.raises(ValueError, match="not compiled"):
        vggbook.restart(keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)]))
    vggbook.restart(again, start)  # before any fit: the optimizer is built here, from zero
    again.fit(x, y, epochs=3, batch_size=8, shuffle=False, verbose=0)
    step = again.train_function
    assert int(again.optimizer.iterations.numpy()) == 12
    vggbook.restart(again, start)  # after a fit: moments and step count back to zero, the rate kept
    assert int(again.optimizer.iterations.numpy()) == 0
    assert all(not np.any(v.numpy()) for v in again.optimizer.variables if v.name != "learning_rate")
    assert float(again.optimizer.learning_rate) == pytest.approx(0.05)
    again.fit(x, y, epochs=3, batch_size=8, shuffle=False, verbose=0)
    assert again.train_function is step  # the traced training step is reused, not traced again
    for trained, reference in zip(again.get_weights(), fresh.get_weights(), strict=True):
        np.testing.assert_allclose(trained, reference, rtol=1e-5, atol=1e-6)


def test_restart_refuses_what_it_cannot_restart() -> None:
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(32, 5)).astype("float32"), rng.integers(0, 3, 32)

    def standardising(data: np.ndarray) -> keras.Model:
        keras.utils.set_random_seed(0)
        norm = keras.layers.Normalization()
        model = keras.Sequential([keras.Input((5,)), norm, keras.layers.Dense(3)])
        norm.adapt(data)
        model.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        return model

    model = standardising(x)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    same = standardising(x).get_weights()  # adapted on the same data: allowed
    vggbook.restart(model, same)
    with pytest.raises(ValueError, match="adapted statistics"):  # adapted on other data: fixed in the trace
        vggbook.restart(model, standardising(2 * x + 1).get_weights())
    with pytest.raises(ValueError, match="weights, got"):
        vggbook.restart(model, same[:-1])

    other = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)])
    other.compile(keras.optimizers.Adagrad(0.1), "mse")  # its accumulators start at 0.1, not 0
    with pytest.raises(ValueError, match="Adagrad"):
        vggbook.restart(other)
