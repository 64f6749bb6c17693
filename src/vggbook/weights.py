"""Where a model's weights come from: seeded random, Keras' ImageNet files, or a file.

Chapter "architecture" introduces the policy; every chapter prints `describe_weights(model)`.
"""

from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path
from urllib.parse import urlsplit

import keras

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
PROBE_TIMEOUT = 3.0  # seconds; an offline machine answers at once, a firewalled one within this


class WeightsError(ValueError):
    """The requested weights cannot be loaded into this model (the message says why)."""


def keras_cache_dir() -> Path:
    """Keras' cache folder: `$KERAS_HOME` or `~/.keras` (chapter "architecture")."""
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def cached_file(remote: str, md5: str, *, download: bool) -> Path:
    """A hash-checked file of Keras' hosted set, from the Keras cache or (if `download`)
    fetched once with `keras.utils.get_file`. Raises `WeightsError` when it can't be had.
    Chapters "architecture" and "classifier".
    """
    url = remote if "://" in remote else f"{BASE_URL}/{remote}"
    name = url.rsplit("/", 1)[-1]
    local = keras_cache_dir() / "models" / name
    if local.exists():
        if _md5(local) != md5:
            raise WeightsError(f"{local} is in the Keras cache but its md5 is not {md5}: delete it and retry")
        return local
    if not download:
        raise WeightsError(f"{name} is not in the Keras cache ({local.parent}) and downloading is off")
    if os.environ.get(OFFLINE_ENV, "") not in ("", "0"):
        raise WeightsError(f"{name} is not in the Keras cache and {OFFLINE_ENV} is set")
    parts = urlsplit(url)
    host = parts.hostname
    try:  # fail fast offline: keras.utils.get_file itself has no timeout
        socket.create_connection((host, parts.port or 443), timeout=PROBE_TIMEOUT).close()
    except OSError as err:  # in words: "[Errno -2] Name or service not known" says little to a reader
        if isinstance(err, socket.gaierror):
            why = "no network (the name does not resolve)"
        elif isinstance(err, TimeoutError):
            why = f"no answer within {PROBE_TIMEOUT:g} s"
        else:
            why = err.strerror or str(err)
        raise WeightsError(f"cannot reach {host} to download {name}: {why}") from None
    try:
        return Path(
            keras.utils.get_file(name, url, cache_subdir="models", file_hash=md5, cache_dir=str(keras_cache_dir()))
        )
    except Exception as err:  # get_file raises bare Exception on network errors
        raise WeightsError(f"download of {url} failed: {err}") from None


def imagenet_weights_path(config: str = "D", include_top: bool = True, *, download: bool = True) -> Path:
    """Path of Keras' ImageNet weights for VGG16 (D) or VGG19 (E) (chapter "architecture")."""
    if (config, include_top) not in IMAGENET_FILES:
        raise WeightsError(f"Keras publishes ImageNet weights for VGG configs D and E only, not {config!r}")
    remote, md5 = IMAGENET_FILES[(config, include_top)]
    return cached_file(remote, md5, download=download)


def load_weights_file(model: keras.Model, path: str | os.PathLike) -> keras.Model:
    """Load a Keras weights file (legacy `.h5` or `.weights.h5`) into `model`, with an error
    that names the file and the model when they do not fit (chapter "architecture")."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    if not path.name.endswith((".h5", ".hdf5", ".keras")):
        raise WeightsError(f"{path}: expected a Keras weights file ending in .h5, .weights.h5 or .keras")
    try:
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
    "random" keeps the seeded initialisation; "imagenet" loads Keras' file (cache, else
    download) or raises; "auto" is ImageNet where it can be had, else seeded random, with
    the reason; anything else is a file path. Chapter "architecture".
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
        load_weights_file(model, path)
        model.weights_source = f"imagenet ({path.name})"
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
