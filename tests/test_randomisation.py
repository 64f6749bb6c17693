"""The cascading randomisation test's two helpers (vggbook.interpret, chapter "classifier"):
`reinitialise` re-draws a layer's weights in place as Keras starts them, `weights_kept` puts
weights back after a block that changed them. Small models only; slabs made small on purpose so
that the slab-by-slab paths are exercised as they are for fc1's 411 MB kernel."""

from __future__ import annotations

import tempfile

import keras
import numpy as np
import pytest

import vggbook
from vggbook import interpret


@pytest.fixture
def model() -> keras.Model:
    return vggbook.build_vgg16(input_shape=(32, 32, 3), width=0.125, classes=5, seed=3)


@pytest.fixture
def small_slabs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(interpret, "SLAB_BYTES", 1000)  # a few rows at a time


def numpy(x) -> np.ndarray:
    return keras.ops.convert_to_numpy(x)


def weights_of(model: keras.Model, names: list[str]) -> list[np.ndarray]:
    return [numpy(w) for name in names for w in model.get_layer(name).weights]


def test_reinitialise_draws_glorot_uniform_and_zero_bias(model, small_slabs):
    layer = model.get_layer("fc1")  # 64 → 512 at this width
    before = numpy(layer.kernel)
    layer.bias.assign(np.ones(layer.bias.shape, dtype="float32"))
    interpret.reinitialise(layer, seed=7)
    kernel = numpy(layer.kernel)
    limit = np.sqrt(6 / sum(kernel.shape))
    assert kernel.shape == before.shape and not np.allclose(kernel, before)
    assert np.abs(kernel).max() <= limit
    # a uniform distribution on ±limit: standard deviation limit / √3, mean 0 (32,768 draws)
    assert kernel.std() == pytest.approx(limit / np.sqrt(3), rel=0.02)
    assert abs(kernel.mean()) < 0.02 * limit
    assert not numpy(layer.bias).any()


def test_reinitialise_is_seeded_and_independent_of_the_slab_size(model, monkeypatch):
    layer = model.get_layer("block3_conv1")  # (3, 3, 32, 64): several rows of the first axis
    interpret.reinitialise(layer, seed=11)
    whole = numpy(layer.kernel)
    monkeypatch.setattr(interpret, "SLAB_BYTES", 1)  # one row of the first axis at a time
    interpret.reinitialise(layer, seed=11)
    np.testing.assert_array_equal(numpy(layer.kernel), whole)
    interpret.reinitialise(layer, seed=12)
    assert not np.array_equal(numpy(layer.kernel), whole)


def test_reinitialise_uses_each_layers_own_fans(model):
    for name in ("block1_conv1", "block5_conv3", "predictions"):
        layer = model.get_layer(name)
        interpret.reinitialise(layer, seed=0)
        shape = layer.kernel.shape
        receptive = np.prod(shape[:-2]) if len(shape) == 4 else 1
        limit = np.sqrt(6 / ((shape[-2] + shape[-1]) * receptive))
        kernel = numpy(layer.kernel)
        assert np.abs(kernel).max() <= limit and np.abs(kernel).max() > 0.9 * limit


def test_reinitialise_refuses_a_layer_without_a_kernel(model):
    with pytest.raises(ValueError, match="block1_pool.*no kernel.*Conv2D or Dense"):
        interpret.reinitialise(model.get_layer("block1_pool"), seed=0)


def test_weights_kept_puts_every_weight_back_exactly(model, small_slabs, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    names = ["predictions", "fc1", "block5_conv3"]
    original = weights_of(model, names)
    x = vggbook.preprocess(vggbook.sample_image("chelsea", 32))
    before = numpy(model(x))
    with vggbook.weights_kept(model, names):
        assert list(tmp_path.iterdir()), "the copies are on disk while the block runs"
        for seed, name in enumerate(names):
            interpret.reinitialise(model.get_layer(name), seed)
        assert not np.allclose(numpy(model(x)), before)
    for kept, now in zip(original, weights_of(model, names), strict=True):
        np.testing.assert_array_equal(now, kept)
    np.testing.assert_array_equal(numpy(model(x)), before)
    assert not list(tmp_path.iterdir()), "the temporary copies are removed"


def test_weights_kept_restores_after_an_error(model):
    original = weights_of(model, ["fc2"])
    with pytest.raises(RuntimeError, match="inside"), vggbook.weights_kept(model, ["fc2"]):
        interpret.reinitialise(model.get_layer("fc2"), seed=1)
        raise RuntimeError("inside the block")
    np.testing.assert_array_equal(weights_of(model, ["fc2"])[0], original[0])


def test_weights_kept_names_an_unknown_layer(model):
    with pytest.raises(ValueError, match="fc9"), vggbook.weights_kept(model, ["fc9"]):
        pass
