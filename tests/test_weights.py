"""vggbook.weights: the "random" / "imagenet" / "auto" / file policy, offline and against a private cache;
the vouched folder `VGGBOOK_WEIGHTS_DIR`; quiet, safe downloads from a local HTTP server.

No test here touches the network or the developer's ~/.keras: every test that looks for ImageNet
weights points KERAS_HOME at its own tmp_path, and BASE_URL at a closed port on this machine or at
an HTTP server on 127.0.0.1 that a test starts.
"""

from __future__ import annotations

import gc
import hashlib
import http.server
import re
import socket
import threading
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest
import standin

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
    """Downloads would go to a closed port on this machine, and the downloader must not run."""
    monkeypatch.setattr(weights, "BASE_URL", "https://127.0.0.1:9/keras-applications")

    def refuse(*args, **kwargs):
        raise AssertionError(f"a test tried to download: {args} {kwargs}")

    monkeypatch.setattr(weights, "download_file", refuse)


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


def test_a_legacy_h5_that_does_not_fit_leaves_the_model_untouched(tmp_path):
    # Every shape is checked before anything is assigned (Keras' own loader would load the layers before
    # the misfit one and leave the model half-loaded).
    source = vggbook.build_vgg16(**SMALL, seed=1)
    layers = [(layer.name, layer.get_weights()) for layer in source.layers]
    kernel, bias = layers[-2][1]  # block5_conv3, the last layer with weights
    layers[-2] = ("block5_conv3", [kernel[..., :-1], bias[:-1]])
    path = tmp_path / "misfit.h5"
    write_legacy_h5(path, layers)
    target = vggbook.build_vgg16(**SMALL, seed=2)
    before = _weights_of(target)
    with pytest.raises(WeightsError, match=r"misfit\.h5 does not fit model 'vgg16'.*'block5_conv3'"):
        vggbook.load_weights_file(target, path)
    for a, b in zip(before, _weights_of(target), strict=True):
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
    assert model.weights_source == f"imagenet ({NOTOP_NAME} from the Keras cache, md5-checked)"
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


def test_a_cached_file_with_the_wrong_md5_is_removed(empty_cache, capsys):
    # A damaged or foreign file in the cache is removed (not left to block every later run), and said so.
    _, md5 = weights.IMAGENET_FILES[("D", False)]
    cached = empty_cache / "models" / NOTOP_NAME
    cached.parent.mkdir()
    cached.write_bytes(b"not the weights")
    with pytest.raises(WeightsError, match=f"md5 is not {md5}.*removed"):
        vggbook.build_vgg16(include_top=False, kernel_initializer="zeros", weights="imagenet")
    assert not cached.exists()
    found = hashlib.md5(b"not the weights").hexdigest()
    assert capsys.readouterr().out == f"Removed {cached} from the Keras cache: its md5 is {found}, not {md5}\n"


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


# ---------------------------------------------------------------------------------------------
# A vouched folder: VGGBOOK_WEIGHTS_DIR (files in Keras' layout and names, used without a hash check)


def _h5_values(path: Path) -> list[np.ndarray]:
    """Every weight in a legacy Keras file, in the file's layer order."""
    with h5py.File(path, "r") as f:
        values = []
        for layer in f.attrs["layer_names"]:
            group = f[layer.decode()]
            values += [np.asarray(group[name.decode()]) for name in group.attrs["weight_names"]]
    return values


def test_a_vouched_folder_is_used_without_a_hash_check(standin_weights_dir, empty_cache, monkeypatch):
    # The stand-in's md5 is not Keras' (IMAGENET_FILES is left as it is): a vouched file is not hashed.
    monkeypatch.setenv("VGGBOOK_WEIGHTS_DIR", str(standin_weights_dir))
    model = vggbook.build_vgg16(include_top=False, weights="imagenet")
    assert model.weights_source == (
        f"imagenet ({NOTOP_NAME} from VGGBOOK_WEIGHTS_DIR={standin_weights_dir}, not hash-checked)"
    )
    assert vggbook.is_pretrained(model)
    assert vggbook.describe_weights(model) == f"Weights of vgg16: {model.weights_source}"
    for expected, got in zip(_h5_values(standin_weights_dir / NOTOP_NAME), _weights_of(model), strict=True):
        np.testing.assert_array_equal(got, expected)
    assert not (empty_cache / "models").exists()  # nothing was copied into, or looked up in, the Keras cache


@pytest.mark.parametrize("include_top", [False, True], ids=["notop", "top"])
def test_keras_and_vggbook_load_the_standin_files_alike(standin_weights_dir, empty_cache, monkeypatch, include_top):
    # The stand-in files are in the layout Keras' own VGG16 reads; ours reads them through the folder.
    name = standin.FULL_NAME if include_top else standin.NOTOP_NAME
    keras.utils.set_random_seed(1)
    theirs = keras.applications.VGG16(weights=str(standin_weights_dir / name), include_top=include_top)
    monkeypatch.setenv("VGGBOOK_WEIGHTS_DIR", str(standin_weights_dir))
    ours = vggbook.build_vgg16(include_top=include_top, kernel_initializer="zeros", weights="imagenet")  # zeros: fast
    assert name in ours.weights_source and "VGGBOOK_WEIGHTS_DIR" in ours.weights_source
    assert len(ours.weights) == len(theirs.weights) == (32 if include_top else 26)
    for a, b in zip(_weights_of(theirs), _weights_of(ours), strict=True):
        np.testing.assert_array_equal(a, b)
    x = vggbook.preprocess(vggbook.sample_image("chelsea"))
    np.testing.assert_allclose(ours(x, training=False), theirs(x, training=False), rtol=1e-5, atol=1e-6)
    del theirs, ours
    gc.collect()  # 2 × 553 MB for the full network: give it back before the next test


def test_the_standin_files_are_seeded_he_scaled_and_share_their_convolutions(standin_weights_dir, tmp_path):
    full, notop = _h5_values(standin_weights_dir / standin.FULL_NAME), _h5_values(standin_weights_dir / NOTOP_NAME)
    assert len(full) == 32 and len(notop) == 26
    for a, b in zip(notop, full[:26], strict=True):  # the no-top file is the convolutions of the full one
        np.testing.assert_array_equal(a, b)
    block3_conv1, fc1 = full[8], full[26]
    assert block3_conv1.shape == (3, 3, 128, 256) and fc1.shape == (25088, 4096)
    for kernel in (block3_conv1, fc1):  # He: std sqrt(2 / fan_in)
        assert kernel.std() == pytest.approx(np.sqrt(2 / np.prod(kernel.shape[:-1])), rel=0.02)
    assert not np.array_equal(full[0][..., 0], full[0][..., 1])  # every unit its own numbers
    # the same seed writes the same numbers; another seed other ones
    assert _md5(standin.write_vgg16_standin(tmp_path / "again.h5", include_top=False)) == _md5(
        standin_weights_dir / NOTOP_NAME
    )
    again = _h5_values(standin.write_vgg16_standin(tmp_path / "again.h5", include_top=False, seed=1))
    assert not np.array_equal(again[0], notop[0])


def test_class_names_come_from_the_vouched_folder(standin_weights_dir, empty_cache, monkeypatch):
    # interpret.imagenet_class_names reads the class index through cached_file: it gets the folder too.
    monkeypatch.setenv("VGGBOOK_WEIGHTS_DIR", str(standin_weights_dir))
    names = vggbook.imagenet_class_names()
    assert names == standin.class_names()
    assert len(names) == len(set(names)) == 1000
    assert names[:3] == ["bulletproof_vest", "chocolate_sauce", "American_Staffordshire_terrier"]
    lengths = [len(n) for n in names]
    assert max(lengths) == 30 and sum(16 <= n <= 25 for n in lengths) > 500  # as long as ImageNet's names get


def test_a_vouched_folder_that_does_not_exist_says_so(empty_cache, monkeypatch, tmp_path):
    missing = tmp_path / "no-such-folder"
    monkeypatch.setenv("VGGBOOK_WEIGHTS_DIR", str(missing))
    message = f"VGGBOOK_WEIGHTS_DIR={missing} is not a folder"
    with pytest.raises(WeightsError, match=re.escape(message)):
        vggbook.build_vgg16(include_top=False, kernel_initializer="zeros", weights="imagenet")
    model = vggbook.build_vgg16(include_top=False, kernel_initializer="zeros", weights="auto")
    assert model.weights_source.startswith("random (seeded initialisation)") and message in model.weights_source
    with pytest.raises(WeightsError, match=re.escape(message)):
        vggbook.imagenet_class_names()


def test_a_vouched_folder_without_the_file_falls_through_to_the_keras_cache(
    fake_imagenet, monkeypatch, no_network, tmp_path
):
    home, md5, written = fake_imagenet
    monkeypatch.setenv("VGGBOOK_WEIGHTS_DIR", str(tmp_path))  # an empty folder
    monkeypatch.setenv("KERAS_HOME", str(home))
    monkeypatch.setitem(weights.IMAGENET_FILES, ("D", False), (NOTOP_REMOTE, md5))
    model = vggbook.build_vgg16(include_top=False, weights="imagenet")
    assert model.weights_source == f"imagenet ({NOTOP_NAME} from the Keras cache, md5-checked)"
    np.testing.assert_array_equal(_weights_of(model)[0], written[0])


def test_a_file_in_neither_place_names_both(empty_cache, monkeypatch, tmp_path):
    monkeypatch.setenv("VGGBOOK_WEIGHTS_DIR", str(tmp_path))
    with pytest.raises(WeightsError, match=f"neither in VGGBOOK_WEIGHTS_DIR={tmp_path} nor in the Keras cache"):
        vggbook.build_vgg16(include_top=False, kernel_initializer="zeros", weights="imagenet")


def test_an_empty_weights_dir_variable_means_unset(fake_imagenet, monkeypatch, no_network):
    home, md5, _ = fake_imagenet
    monkeypatch.setenv("VGGBOOK_WEIGHTS_DIR", "")
    monkeypatch.setenv("KERAS_HOME", str(home))
    monkeypatch.setitem(weights.IMAGENET_FILES, ("D", False), (NOTOP_REMOTE, md5))
    assert weights.vouched_dir() is None
    assert vggbook.imagenet_weights_path("D", include_top=False) == home / "models" / NOTOP_NAME


def test_a_vouched_file_that_does_not_load_raises_even_for_auto(empty_cache, monkeypatch, tmp_path):
    # The user vouched for it: a broken file is an error to fix, never a silent fall-back to random.
    (tmp_path / NOTOP_NAME).write_text("this is not an HDF5 file\n")
    monkeypatch.setenv("VGGBOOK_WEIGHTS_DIR", str(tmp_path))
    with pytest.raises(WeightsError, match=f"{NOTOP_NAME} does not fit model"):
        vggbook.build_vgg16(include_top=False, kernel_initializer="zeros", weights="auto")


# ---------------------------------------------------------------------------------------------
# Downloads: one line of output, a temporary file renamed into place only when its md5 matches


BLOB = np.random.default_rng(0).bytes(300_000)  # 300.0 kB


@pytest.fixture
def server():
    """An HTTP server on 127.0.0.1 in a thread. `routes[path] = (body, content_length)`; a
    Content-Length larger than the body makes the server close the connection mid-transfer."""
    routes: dict[str, tuple[bytes, int]] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the name http.server calls)
            if self.path not in routes:
                self.send_error(404)
                return
            body, length = routes[self.path]
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(length))
            self.end_headers()
            self.wfile.write(body)  # HTTP/1.0: the connection closes after the body, short or not

        def log_message(self, *args):  # keep the test's stderr clean
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    httpd.routes = routes
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@pytest.fixture
def online(tmp_path, monkeypatch):
    """An empty private Keras cache with downloads allowed (to 127.0.0.1 only: the tests name the URL)."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.delenv("VGGBOOK_OFFLINE")
    monkeypatch.delenv("VGGBOOK_WEIGHTS_DIR", raising=False)
    return tmp_path / "models"


def _md5_of(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def test_a_download_prints_one_line_and_puts_the_file_in_place(server, online, capsys):
    server.routes["/files/blob.bin"] = (BLOB, len(BLOB))
    path = weights.cached_file(f"{server.url}/files/blob.bin", _md5_of(BLOB), download=True)
    assert path == online / "blob.bin" and path.read_bytes() == BLOB
    assert list(online.iterdir()) == [path]  # no temporary file left beside it
    out, err = capsys.readouterr()
    assert re.fullmatch(r"Downloaded blob\.bin \(300\.0 kB\) from 127\.0\.0\.1 in \d+\.\d s\n", out), out
    assert err == ""  # no progress bar, no log line
    # the second time it comes from the cache, silently
    assert weights.cached_file(f"{server.url}/files/blob.bin", _md5_of(BLOB), download=True) == path
    assert capsys.readouterr() == ("", "")


def test_a_download_with_the_wrong_md5_leaves_nothing(server, online, capsys):
    server.routes["/blob.bin"] = (BLOB, len(BLOB))
    with pytest.raises(WeightsError, match=f"failed its hash check: md5 is {_md5_of(BLOB)}, not {'0' * 32}"):
        weights.cached_file(f"{server.url}/blob.bin", "0" * 32, download=True)
    assert list(online.iterdir()) == []
    assert capsys.readouterr().out == ""


def test_a_transfer_cut_short_leaves_nothing(server, online):
    server.routes["/blob.bin"] = (BLOB[:100_000], len(BLOB))  # announces 300,000 bytes, sends 100,000, closes
    with pytest.raises(WeightsError, match="cut short: 100,000 of 300,000 bytes arrived"):
        weights.cached_file(f"{server.url}/blob.bin", _md5_of(BLOB), download=True)
    assert list(online.iterdir()) == []


def test_a_missing_remote_file_says_http_404(server, online):
    with pytest.raises(WeightsError, match="HTTP 404"):
        weights.cached_file(f"{server.url}/nothing.bin", _md5_of(BLOB), download=True)
    assert list(online.iterdir()) == []


def test_an_interrupted_download_leaves_nothing(server, online, monkeypatch):
    server.routes["/blob.bin"] = (BLOB, len(BLOB))

    def interrupt(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(weights.os, "replace", interrupt)  # the moment before the file would be put in place
    with pytest.raises(KeyboardInterrupt):
        weights.cached_file(f"{server.url}/blob.bin", _md5_of(BLOB), download=True)
    assert list(online.iterdir()) == []


def test_a_bad_file_in_the_cache_is_removed_and_downloaded_again(server, online, capsys):
    server.routes["/blob.bin"] = (BLOB, len(BLOB))
    online.mkdir()
    (online / "blob.bin").write_bytes(BLOB[:1000])  # e.g. what an older downloader left after a cut transfer
    path = weights.cached_file(f"{server.url}/blob.bin", _md5_of(BLOB), download=True)
    assert path.read_bytes() == BLOB
    removed, downloaded = capsys.readouterr().out.splitlines()
    assert removed == f"Removed {path} from the Keras cache: its md5 is {_md5_of(BLOB[:1000])}, not {_md5_of(BLOB)}"
    assert downloaded.startswith("Downloaded blob.bin (300.0 kB) from 127.0.0.1 in ")


def test_build_vgg16_downloads_quietly_from_the_server(server, online, monkeypatch, standin_weights_dir, capsys):
    # The whole path a reader's first run takes: "auto" finds no file, downloads Keras' file (here the
    # stand-in, from the local server), checks its md5, loads it, and the page shows one line and the source.
    data = (standin_weights_dir / NOTOP_NAME).read_bytes()
    server.routes[f"/keras-applications/{NOTOP_REMOTE}"] = (data, len(data))
    monkeypatch.setattr(weights, "BASE_URL", f"{server.url}/keras-applications")
    monkeypatch.setitem(weights.IMAGENET_FILES, ("D", False), (NOTOP_REMOTE, _md5_of(data)))
    model = vggbook.build_vgg16(include_top=False, weights="auto")
    assert model.weights_source == f"imagenet ({NOTOP_NAME} from the Keras cache, md5-checked)"
    out, err = capsys.readouterr()
    assert re.fullmatch(rf"Downloaded {re.escape(NOTOP_NAME)} \(58\.9 MB\) from 127\.0\.0\.1 in \d+\.\d s\n", out)
    assert err == ""
    assert (online / NOTOP_NAME).read_bytes() == data
    np.testing.assert_array_equal(_weights_of(model)[0], _h5_values(standin_weights_dir / NOTOP_NAME)[0])
