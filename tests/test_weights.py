"""vggbook.weights: the "random" / "imagenet" / "auto" / file policy, offline and against a private cache.

No test here touches the network or the developer's ~/.keras: every test that looks for ImageNet
weights points KERAS_HOME at its own tmp_path, and BASE_URL at a closed port on this machine.
"""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest

import vggbook
from vggbook import WeightsError, weights

SMALL = {"width": 0.125, "input_shape": (32, 32, 3), "include_top": False}
NOTOP_REMOTE, _ = weights.IMAGENET_FILES[("D", False)]
NOTOP_NAME = NOTOP_REMOTE.rsplit("/", 1)[-1]  # vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5


def write_legacy_h5(path: Path, layers: list[tuple[str, list[np.ndarray]]]) -> None:
    """Write weights in the layout of Keras' hosted ImageNet files (Keras 2 `save_weights` to .h5,
    read by keras/src/legacy/saving/legacy_h5_format.py): root attributes `layer_names`, `backend`,
    `keras_version`; one group per layer with attribute `weight_names`, whose datasets sit at
    `<layer>/<layer>/kernel:0` and `<layer>/<layer>/bias:0`. Layers without weights have an empty list."""
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array([name.encode("utf8") for name, _ in layers])
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.2.4"
        for name, values in layers:
            group = f.create_group(name)
            weight_names = [f"{name}/{kind}:0".encode() for kind in ("kernel", "bias")[: len(values)]]
            group.attrs["weight_names"] = np.array(weight_names, dtype="S")
            for weight_name, value in zip(weight_names, values, strict=True):
                group.create_dataset(weight_name.decode("utf8"), data=value)


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _weights_of(model: keras.Model) -> list[np.ndarray]:
    return model.get_weights()


@pytest.fixture(scope="module")
def fake_imagenet(tmp_path_factory):
    """A Keras cache holding a stand-in for the VGG16 no-top ImageNet file: seeded random values
    (not the real weights, which would need the network) in the legacy layout. Returns the cache
    folder, the file's md5 and the per-layer values written."""
    home = tmp_path_factory.mktemp("keras_home")
    (home / "models").mkdir()
    template = vggbook.build_vgg16(include_top=False, kernel_initializer="zeros")
    rng = np.random.default_rng(42)
    layers = []
    for layer in template.layers:
        name = "input_1" if isinstance(layer, keras.layers.InputLayer) else layer.name  # as in the real file
        values = [rng.standard_normal(w.shape).astype(np.float32) * 0.01 for w in layer.get_weights()]
        layers.append((name, values))
    path = home / "models" / NOTOP_NAME
    write_legacy_h5(path, layers)
    written = [v for _, values in layers for v in values]
    return home, _md5(path), written


@pytest.fixture
def no_network(monkeypatch):
    """Downloads would go to a closed port on this machine, and keras.utils.get_file must not run."""
    monkeypatch.setattr(weights, "BASE_URL", "https://127.0.0.1:9/keras-applications")

    def refuse(*args, **kwargs):
        raise AssertionError(f"a test tried to download: {args} {kwargs}")

    monkeypatch.setattr(weights.keras.utils, "get_file", refuse)


@pytest.fixture
def empty_cache(tmp_path, monkeypatch, no_network):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    return tmp_path


# ---------------------------------------------------------------------------------------------
# "random" and bad requests


def test_random_is_recorded():
    model = vggbook.build_vgg16(**SMALL)
    assert model.weights_source.startswith("random")
    assert not vggbook.is_pretrained(model)
    assert vggbook.describe_weights(model) == f"Weights of vgg16: {model.weights_source}"


def test_describe_weights_of_a_foreign_model():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    assert "unknown" in vggbook.describe_weights(model)
    assert not vggbook.is_pretrained(model)


@pytest.mark.parametrize("request_", ["imagenett", "Random", "pretrained"])
def test_unknown_string_raises(request_):
    with pytest.raises(WeightsError, match=f"unknown weights '{request_}'"):
        vggbook.build_vgg16(**SMALL, weights=request_)


def test_none_raises_a_clear_error():
    # keras.applications spells "random" as weights=None; here it must say what to use instead
    with pytest.raises(WeightsError, match="'random', 'imagenet', 'auto' or a file path"):
        vggbook.build_vgg16(**SMALL, weights=None)


def test_weights_error_is_a_value_error():
    assert issubclass(WeightsError, ValueError)


# ---------------------------------------------------------------------------------------------
# Weight files


def test_missing_file_names_it(tmp_path):
    missing = tmp_path / "nowhere.weights.h5"
    with pytest.raises(FileNotFoundError, match="nowhere.weights.h5"):
        vggbook.build_vgg16(**SMALL, weights=str(missing))


def test_weights_file_round_trip(tmp_path):
    source = vggbook.build_vgg16(**SMALL, seed=1)
    path = tmp_path / "small.weights.h5"
    source.save_weights(path)
    loaded = vggbook.build_vgg16(**SMALL, seed=2, weights=path)
    assert loaded.weights_source == "file small.weights.h5"
    for a, b in zip(_weights_of(source), _weights_of(loaded), strict=True):
        np.testing.assert_array_equal(a, b)
    # and the load really changed something: seed 2 on its own differs
    assert not np.array_equal(_weights_of(vggbook.build_vgg16(**SMALL, seed=2))[0], _weights_of(loaded)[0])


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_weights_from_a_narrower_model_are_refused(tmp_path):
    path = tmp_path / "narrow.weights.h5"
    vggbook.build_vgg16(**SMALL).save_weights(path)
    with pytest.raises(WeightsError, match="narrow.weights.h5"):
        vggbook.build_vgg16(width=0.25, input_shape=(32, 32, 3), include_top=False, weights=path)


def test_legacy_h5_from_a_narrower_model_is_refused(tmp_path):
    narrow = vggbook.build_vgg16(**SMALL)
    path = tmp_path / "narrow.h5"
    write_legacy_h5(path, [(layer.name, layer.get_weights()) for layer in narrow.layers])
    with pytest.raises(WeightsError, match="narrow.h5"):
        vggbook.build_vgg16(width=0.25, input_shape=(32, 32, 3), include_top=False, weights=path)


def test_legacy_h5_of_the_same_architecture_loads(tmp_path):
    source = vggbook.build_vgg16(**SMALL, seed=1)
    path = tmp_path / "same.h5"
    write_legacy_h5(path, [(layer.name, layer.get_weights()) for layer in source.layers])
    loaded = vggbook.build_vgg16(**SMALL, seed=2, weights=path)
    for a, b in zip(_weights_of(source), _weights_of(loaded), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_file_that_is_not_hdf5_is_refused(tmp_path):
    path = tmp_path / "x.h5"
    path.write_text("this is not an HDF5 file\n")
    with pytest.raises(WeightsError, match="x.h5"):
        vggbook.build_vgg16(**SMALL, weights=path)


def test_a_file_with_a_foreign_suffix_is_refused(tmp_path):
    path = tmp_path / "weights.npz"
    path.write_bytes(b"\0")
    with pytest.raises(WeightsError, match="weights.npz"):
        vggbook.build_vgg16(**SMALL, weights=path)


# ---------------------------------------------------------------------------------------------
# ImageNet: Keras' legacy file from the (private) Keras cache


def test_imagenet_loads_the_cached_file(fake_imagenet, monkeypatch, no_network):
    home, md5, written = fake_imagenet
    monkeypatch.setenv("KERAS_HOME", str(home))
    monkeypatch.setitem(weights.IMAGENET_FILES, ("D", False), (NOTOP_REMOTE, md5))
    model = vggbook.build_vgg16(include_top=False, weights="imagenet")
    assert model.weights_source == f"imagenet ({NOTOP_NAME})"
    assert vggbook.is_pretrained(model)
    assert len(written) == len(model.weights) == 26
    for expected, got in zip(written, _weights_of(model), strict=True):
        np.testing.assert_array_equal(got, expected)


def test_auto_uses_the_cached_file_at_any_input_size(fake_imagenet, monkeypatch, no_network):
    home, md5, written = fake_imagenet
    monkeypatch.setenv("KERAS_HOME", str(home))
    monkeypatch.setitem(weights.IMAGENET_FILES, ("D", False), (NOTOP_REMOTE, md5))
    model = vggbook.build_vgg16(include_top=False, input_shape=(64, 64, 3), weights="auto")
    assert vggbook.is_pretrained(model)
    np.testing.assert_array_equal(_weights_of(model)[0], written[0])


def test_imagenet_with_the_wrong_md5_is_refused(fake_imagenet, monkeypatch, no_network):
    home, _, _ = fake_imagenet
    monkeypatch.setenv("KERAS_HOME", str(home))
    monkeypatch.setitem(weights.IMAGENET_FILES, ("D", False), (NOTOP_REMOTE, "0" * 32))
    with pytest.raises(WeightsError, match="md5"):
        vggbook.build_vgg16(include_top=False, weights="imagenet")


def test_imagenet_weights_path_finds_the_cached_file(fake_imagenet, monkeypatch, no_network):
    home, md5, _ = fake_imagenet
    monkeypatch.setenv("KERAS_HOME", str(home))
    monkeypatch.setitem(weights.IMAGENET_FILES, ("D", False), (NOTOP_REMOTE, md5))
    assert vggbook.imagenet_weights_path("D", include_top=False) == home / "models" / NOTOP_NAME
    with pytest.raises(WeightsError, match="configs D and E only"):
        vggbook.imagenet_weights_path("A")


def test_auto_offline_falls_back_to_random(empty_cache):
    model = vggbook.build_vgg16(include_top=False, input_shape=(32, 32, 3), weights="auto")
    assert model.weights_source.startswith("random (seeded initialisation)")
    assert "ImageNet weights unavailable" in model.weights_source
    assert "VGGBOOK_OFFLINE" in model.weights_source
    assert not vggbook.is_pretrained(model)
    # the fallback is exactly the seeded random model
    random = vggbook.build_vgg16(include_top=False, input_shape=(32, 32, 3))
    np.testing.assert_array_equal(_weights_of(model)[0], _weights_of(random)[0])


def test_auto_with_the_host_unreachable_falls_back_to_random(empty_cache, monkeypatch):
    monkeypatch.delenv("VGGBOOK_OFFLINE")
    with pytest.raises(OSError):  # the premise: nothing listens on that port
        socket.create_connection(("127.0.0.1", 9), timeout=1).close()
    model = vggbook.build_vgg16(include_top=False, input_shape=(32, 32, 3), weights="auto")
    assert model.weights_source.startswith("random (seeded initialisation)")
    assert "cannot reach 127.0.0.1" in model.weights_source
    assert "refused" in model.weights_source  # the probe really connected to port 9, and failed at once
    assert NOTOP_NAME in model.weights_source


def test_auto_without_name_resolution_says_no_network(empty_cache, monkeypatch):
    # A machine without network cannot resolve the weights' host: the page says so in words, not "[Errno -2]".
    monkeypatch.delenv("VGGBOOK_OFFLINE")
    monkeypatch.setattr(vggbook.weights, "BASE_URL", "https://weights.vggbook.invalid/keras-applications")
    model = vggbook.build_vgg16(include_top=False, input_shape=(32, 32, 3), weights="auto")
    assert "cannot reach weights.vggbook.invalid" in model.weights_source
    assert "no network (the name does not resolve)" in model.weights_source
    assert "Errno" not in model.weights_source


def test_imagenet_offline_raises(empty_cache):
    with pytest.raises(WeightsError, match="VGGBOOK_OFFLINE"):
        vggbook.build_vgg16(include_top=False, input_shape=(32, 32, 3), kernel_initializer="zeros", weights="imagenet")


def test_imagenet_with_the_host_unreachable_raises(empty_cache, monkeypatch):
    monkeypatch.delenv("VGGBOOK_OFFLINE")
    with pytest.raises(WeightsError, match="cannot reach 127.0.0.1"):
        vggbook.build_vgg16(include_top=False, input_shape=(32, 32, 3), kernel_initializer="zeros", weights="imagenet")


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"config": "A"}, "no ImageNet weights for VGG config 'A'"),
        ({"width": 0.5}, "widths, classes or input size differ"),
        ({"batch_norm": True}, "no batch-norm layers"),
    ],
)
def test_imagenet_for_a_different_network_says_why(empty_cache, kwargs, reason):
    kwargs = {"config": "D", "include_top": False, "input_shape": (32, 32, 3), "kernel_initializer": "zeros", **kwargs}
    with pytest.raises(WeightsError, match=reason):
        vggbook.build_vgg(**kwargs, weights="imagenet")
    model = vggbook.build_vgg(**kwargs, weights="auto")
    assert reason in model.weights_source


def test_imagenet_with_other_classes_says_why(empty_cache):
    with pytest.raises(WeightsError, match="classes"):
        vggbook.build_vgg16(classes=10, kernel_initializer="zeros", weights="imagenet")


def test_session_cache_is_private():
    # conftest points Keras at an empty temporary home for the whole session
    assert weights.keras_cache_dir() != Path.home() / ".keras"
    assert "vggbook-keras-home-" in str(weights.keras_cache_dir())
