"""Every layer's output from ONE forward pass (chapter "block1" explains it; all block chapters use it)."""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable, Iterable

import keras
import numpy as np
import tensorflow as tf

# Functional views of a model (feature extractors, Grad-CAM and ascent views), kept while the model
# lives: building a view is cheap, but tracing it again on every call is not.
_VIEWS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _cached(model: keras.Model, key: tuple, build: Callable[[], object]):
    """`build()` once per (model, key); later calls return the same object."""
    per_model = _VIEWS.setdefault(model, {})
    if key not in per_model:
        per_model[key] = build()
    return per_model[key]


def default_layers(model: keras.Model) -> list[str]:
    """The layers whose outputs the book shows: every post-ReLU conv output and every pool
    (for the batch-norm variant, the ReLU layers rather than the raw convolutions)."""
    names = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.MaxPooling2D):
            names.append(layer.name)
        elif isinstance(layer, keras.layers.Conv2D) and layer.activation is keras.activations.relu:
            names.append(layer.name)
        elif isinstance(layer, keras.layers.Activation) and layer.name.startswith("block"):
            names.append(layer.name)
    return names


def check_layer_names(model: keras.Model, names: Iterable[str]) -> list[str]:
    """`names` as a list, or a ValueError naming the unknown ones and listing the valid ones."""
    names = [names] if isinstance(names, str) else list(names)
    known = [layer.name for layer in model.layers]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown layer name(s) {unknown} in model {model.name!r}; valid names: {', '.join(known)}")
    return names


def _as_batch(model: keras.Model, x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    expected = tuple(model.input_shape[1:])
    if x.ndim != 4:
        raise ValueError(
            f"expected a preprocessed batch of shape (N, {', '.join(map(str, expected))}), got {x.shape}; "
            "use vggbook.preprocess(image) to make one"
        )
    if any(e is not None and e != s for e, s in zip(expected, x.shape[1:], strict=True)):
        raise ValueError(f"input of shape {x.shape} does not fit model {model.name!r}, which takes (N, {expected})")
    return x.astype(np.float32, copy=False)


def feature_maps(model: keras.Model, x: np.ndarray, layers: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """{layer name: output as NumPy array} for the requested layers (default: every conv and
    pool output), computed in ONE forward pass of a compiled Functional view of `model`, kept for
    later calls with the same layers. Chapter "block1"."""
    names = default_layers(model) if layers is None else check_layer_names(model, layers)
    x = _as_batch(model, x)
    extractor = _cached(model, ("features", *names), lambda: _compiled_extractor(model, names))
    values = extractor(tf.constant(x))
    return {name: keras.ops.convert_to_numpy(values[name]) for name in names}


def _compiled_extractor(model: keras.Model, names: list[str]) -> Callable:
    """A Functional view of `model` returning the named layers' outputs, as ONE TensorFlow graph: run eagerly,
    Keras dispatches layer by layer in Python (about 15 % slower for VGG16, benchmarks/matmul_ratio.py). One
    trace per batch size, fewer with reduce_retracing."""
    # a dict of outputs: with a list, a one-output model returns a bare tensor, not a list
    view = keras.Model(model.input, {n: model.get_layer(n).output for n in names}, name=f"{model.name}_features")
    # a partial of the view's own call, not a lambda: tf.function keys its traces on the function, and a new
    # lambda per model made TensorFlow warn about retracing once several models had been seen
    return tf.function(functools.partial(view.__call__, training=False), reduce_retracing=True)
