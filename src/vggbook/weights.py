"""Where a model's weights come from: seeded random, Keras' ImageNet files, or a file.

Keras' ImageNet files are looked for, in this order, in a folder the user vouches for
(`$VGGBOOK_WEIGHTS_DIR`, used as it is: no hash check), in the Keras cache (`$KERAS_HOME/models`,
md5-checked) and, where downloading is allowed, on Keras' server (one line on the page, md5-checked
before the file is put in the cache). Chapter "block1" introduces the policy; every chapter
prints `describe_weights(model)`.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from urllib.parse import urlsplit

import h5py
import keras

from vggbook import downloads
from vggbook.downloads import CHUNK

BASE_URL = "https://storage.googleapis.com/tensorflow/keras-applications"
# The files `keras.applications.VGG16/VGG19(weights="imagenet")` use, with Keras' own md5 hashes.
IMAGENET_FILES: dict[tuple[str, bool], tuple[str, str]] = {
    ("D", True): ("vgg16/vgg16_weights_tf_dim_ordering_tf_kernels.h5", "64373286793e3c8b2b4e3219cbf3544b"),
    ("D", False): ("vgg16/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5", "6d6bbae143d832006294945121d1f1fc"),
    ("E", True): ("vgg19/vgg19_weights_tf_dim_ordering_tf_kernels.h5", "cbe5617147190e668d6c5d5026f83318"),
    ("E", False): ("vgg19/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5", "253f8cb515780f3b799900260a226db6"),
}
# Parameter counts of the published networks: a model whose count differs cannot take their weights.
PUBLISHED_PARAMS = {
    ("D", True): 138_357_544,
    ("D", False): 14_714_688,
    ("E", True): 143_667_240,
    ("E", False): 20_024_384,
}
OFFLINE_ENV = "VGGBOOK_OFFLINE"  # set to 1 to make "auto" never touch the network
WEIGHTS_DIR_ENV = "VGGBOOK_WEIGHTS_DIR"  # a folder of Keras-named files the user vouches for: read first, not hashed
SLAB_ROWS = 1024  # rows of a weight read from a legacy file and assigned at a time (fc1: 16 MB of 411 MB)


class WeightsError(ValueError):
    """The requested weights cannot be loaded into this model (the message says why)."""


def keras_cache_dir() -> Path:
    """Keras' cache folder: `$KERAS_HOME` or `~/.keras` (chapter "block1")."""
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))


def vouched_dir() -> Path | None:
    """The folder named by `$VGGBOOK_WEIGHTS_DIR` (None when unset or empty); `WeightsError` when
    it is set but is not a folder. Its files are used without a hash check. Chapter "block1"."""
    value = os.environ.get(WEIGHTS_DIR_ENV, "")
    if not value:
        return None
    folder = Path(value).expanduser()
    if not folder.is_dir():
        raise WeightsError(f"{WEIGHTS_DIR_ENV}={value} is not a folder: create it, or unset it to use the Keras cache")
    return folder


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _probe(url: str, name: str) -> None:
    """Fail fast offline: connect to the host before the download (which waits up to DOWNLOAD_TIMEOUT)."""
    why = downloads.unreachable(url)
    if why is not None:
        raise WeightsError(f"cannot reach {urlsplit(url).hostname} to download {name}: {why}")


def download_file(url: str, local: Path, md5: str) -> Path:
    """Fetch `url` into `local` with `downloads.download`: ONE line printed (what, how big, from where,
    how long), no progress bar; the file is renamed into place only when complete and its md5 is `md5`,
    and on any failure (network error, transfer cut short, wrong md5, interrupt) nothing is left behind
    and `WeightsError` says what went wrong. The block chapters and chapter "classifier" (through
    `cached_file`).
    """
    try:
        return downloads.download(url, local, md5=md5)
    except downloads.DownloadError as err:
        raise WeightsError(str(err)) from None


def cached_file(remote: str, md5: str, *, download: bool) -> Path:
    """A file of Keras' hosted set: from `$VGGBOOK_WEIGHTS_DIR` as it is (the user vouches for it),
    else from the Keras cache if its md5 is right (a cached file with a wrong md5 is removed), else
    downloaded with `download_file` (if `download` and `$VGGBOOK_OFFLINE` is not set). A vouched
    folder that lacks the file falls through to the Keras cache. Raises `WeightsError` when the
    file can't be had. The block chapters and chapter "classifier".
    """
    url = remote if "://" in remote else f"{BASE_URL}/{remote}"
    name = url.rsplit("/", 1)[-1]
    folder = vouched_dir()
    if folder is not None and (folder / name).is_file():
        return folder / name
    local = keras_cache_dir() / "models" / name
    missing = "not in the Keras cache"
    if folder is not None:
        missing = f"neither in {WEIGHTS_DIR_ENV}={folder} nor in the Keras cache"
    if local.exists():
        found = _md5(local)
        if found == md5:
            return local
        try:  # a damaged or foreign file would block every later run
            local.unlink()
        except OSError as err:
            raise WeightsError(f"{local} has the wrong md5 (not {md5}) and cannot be removed: {err}") from None
        print(f"Removed {local} from the Keras cache: its md5 is {found}, not {md5}", flush=True)
        missing += f" (its copy there failed the hash check — md5 is not {md5} — and was removed)"
    if not download:
        raise WeightsError(f"{name} is {missing} ({local.parent}) and downloading is off")
    if os.environ.get(OFFLINE_ENV, "") not in ("", "0"):
        raise WeightsError(f"{name} is {missing} and {OFFLINE_ENV} is set")
    _probe(url, name)
    return download_file(url, local, md5)


def weights_origin(path: Path) -> str:
    """Where a file returned by `cached_file` came from, for the page (every chapter that loads weights)."""
    folder = vouched_dir()
    if folder is not None and path.parent.resolve() == folder.resolve():
        return f"from {WEIGHTS_DIR_ENV}={folder}, not hash-checked"
    return "from the Keras cache, md5-checked"


def imagenet_weights_path(config: str = "D", include_top: bool = True, *, download: bool = True) -> Path:
    """Path of Keras' ImageNet weights for VGG16 (D) or VGG19 (E), found or fetched by `cached_file`
    (chapter "block1")."""
    if (config, include_top) not in IMAGENET_FILES:
        raise WeightsError(f"Keras publishes ImageNet weights for VGG configs D and E only, not {config!r}")
    remote, md5 = IMAGENET_FILES[(config, include_top)]
    return cached_file(remote, md5, download=download)


def _is_legacy_weights_file(path: Path) -> bool:
    """True for a Keras 2 weights-only HDF5 file (Keras' ImageNet files): `layer_names` at its root."""
    if not h5py.is_hdf5(path):
        return False
    with h5py.File(path, "r") as f:
        return "layer_names" in f.attrs and "top_level_model_weights" not in f


def _text(value: bytes | str) -> str:
    return value.decode("utf8") if isinstance(value, bytes) else str(value)


def _assign_legacy_weights(model: keras.Model, path: Path) -> None:
    """Keras' legacy loading (keras/src/legacy/saving/legacy_h5_format.py: the file's layers with
    weights matched in order to the model's), but every shape is checked before anything is assigned
    (a mismatch leaves the model untouched), and each weight is read and assigned SLAB_ROWS rows at
    a time: Keras' loader holds a NumPy and a tensor copy of the 411 MB fc1 kernel at once."""
    with h5py.File(path, "r") as f:
        groups = [f[_text(name)] for name in f.attrs["layer_names"]]
        stored = [[group[_text(name)] for name in group.attrs["weight_names"]] for group in groups]
        stored = [datasets for datasets in stored if datasets]
        layers = [layer for layer in model.layers if layer.weights]
        if len(stored) != len(layers):
            raise ValueError(f"the file has {len(stored)} layers with weights, the model {len(layers)}")
        pairs = []
        for layer, datasets in zip(layers, stored, strict=True):
            variables = layer.trainable_weights + layer.non_trainable_weights  # the order Keras saved them in
            shapes = [tuple(d.shape) for d in datasets], [tuple(v.shape) for v in variables]
            if shapes[0] != shapes[1]:
                raise ValueError(f"layer {layer.name!r} has weights of shapes {shapes[1]}, the file {shapes[0]}")
            pairs += zip(variables, datasets, strict=True)
        for variable, dataset in pairs:
            if dataset.ndim == 0 or dataset.shape[0] <= SLAB_ROWS:
                variable.assign(dataset[()])
                continue
            for start in range(0, dataset.shape[0], SLAB_ROWS):  # TensorFlow variables take sliced assigns
                slab = dataset[start : start + SLAB_ROWS].astype(variable.dtype, copy=False)
                variable.value[start : start + SLAB_ROWS].assign(slab)


def load_weights_file(model: keras.Model, path: str | os.PathLike) -> keras.Model:
    """Load a Keras weights file (legacy `.h5` or `.weights.h5`) into `model`, with an error
    that names the file and the model when they do not fit (chapters "architecture", "block1"). A legacy
    file, like Keras' ImageNet files, is read a slab at a time (see `_assign_legacy_weights`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    if not path.name.endswith((".h5", ".hdf5", ".keras")):
        raise WeightsError(f"{path}: expected a Keras weights file ending in .h5, .weights.h5 or .keras")
    try:
        if _is_legacy_weights_file(path):
            _assign_legacy_weights(model, path)
        else:
            model.load_weights(path)
    except Exception as err:  # h5py and Keras raise OSError, ValueError, KeyError …
        raise WeightsError(f"{path} does not fit model {model.name!r}: {err}") from None
    return model


def _imagenet_compatible(model: keras.Model, include_top: bool) -> str | None:
    """Why Keras' ImageNet file cannot fit this model, or None if it can."""
    config = getattr(model, "vgg_config", None)
    if config not in ("D", "E"):
        return f"there are no ImageNet weights for VGG config {config!r}"
    if any(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers):
        return "Keras' ImageNet weights have no batch-norm layers"
    if model.count_params() != PUBLISHED_PARAMS[(config, include_top)]:
        return "the model's widths, classes or input size differ from the published network"
    return None


def apply_weights(model: keras.Model, weights: str | os.PathLike, *, include_top: bool) -> keras.Model:
    """Set `model`'s weights by the book's policy and record it in `model.weights_source`:
    "random" keeps the seeded initialisation; "imagenet" loads Keras' file (vouched folder,
    Keras cache or download: see `cached_file`) or raises; "auto" is ImageNet where it can be
    had, else seeded random, with the reason; anything else is a file path. Chapter "block1".
    """
    if not isinstance(weights, str | os.PathLike):
        raise WeightsError(f"weights must be 'random', 'imagenet', 'auto' or a file path, not {weights!r}")
    if weights == "random":
        model.weights_source = "random (seeded initialisation)"
        return model
    if weights in ("imagenet", "auto"):
        reason = _imagenet_compatible(model, include_top)
        if reason is None:
            try:
                path = imagenet_weights_path(model.vgg_config, include_top)
            except WeightsError as err:
                reason = str(err)
        if reason is not None:
            if weights == "imagenet":
                raise WeightsError(f"ImageNet weights unavailable: {reason}")
            model.weights_source = f"random (seeded initialisation) — ImageNet weights unavailable: {reason}"
            return model
        load_weights_file(model, path)  # a vouched file that does not load raises: never a silent fall-back
        model.weights_source = f"imagenet ({path.name} {weights_origin(path)})"
        return model
    if isinstance(weights, str) and weights.isidentifier():
        raise WeightsError(f"unknown weights {weights!r}: use 'random', 'imagenet', 'auto' or a file path")
    load_weights_file(model, weights)
    model.weights_source = f"file {Path(weights).name}"
    return model


def is_pretrained(model: keras.Model) -> bool:
    """True when the model carries ImageNet weights (chapters "classifier", block chapters)."""
    return getattr(model, "weights_source", "").startswith("imagenet")


def describe_weights(model: keras.Model) -> str:
    """One line for the page: which weights this model carries (every chapter)."""
    return f"Weights of {model.name}: {getattr(model, 'weights_source', 'unknown (not built by vggbook)')}"
