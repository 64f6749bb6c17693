"""Every layer's output from ONE forward pass (chapter "block1" explains it; all block chapters use it), for
VGG16 and for any Keras 3 image model, Functional or Sequential (chapter "your_model")."""

from __future__ import annotations

import difflib
import functools
import weakref
from collections.abc import Callable, Iterable

import keras
import numpy as np
import tensorflow as tf

# Functional views of a model (feature extractors, Grad-CAM and ascent views), kept while the model
# lives: building a view is cheap, but tracing it again on every call is not.
_VIEWS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

# The layers whose outputs are maps the book shows. Keras 3's depthwise, separable and transposed
# convolutions are not subclasses of Conv2D, so each is named.
CONVOLUTIONS = (
    keras.layers.Conv2D,
    keras.layers.DepthwiseConv2D,
    keras.layers.SeparableConv2D,
    keras.layers.Conv2DTranspose,
)
POOLS = (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D)
ACTIVATIONS = (
    keras.layers.Activation,
    keras.layers.ReLU,
    keras.layers.LeakyReLU,
    keras.layers.PReLU,
    keras.layers.ELU,
)
LIST_ALL_BELOW = 30  # an unknown layer name lists every name of a model with fewer layers than this


def _cached(model: keras.Model, key: tuple, build: Callable[[], object]):
    """`build()` once per (model, key); later calls return the same object."""
    per_model = _VIEWS.setdefault(model, {})
    if key not in per_model:
        per_model[key] = build()
    return per_model[key]


def ensure_built(model: keras.Model, x: np.ndarray | None = None) -> keras.Model:
    """`model`, with every layer's output defined (a graph the helper can read), or a ValueError that says how
    to get one. A Sequential model that has not been built yet is built for the batch `x`'s image shape
    (with any batch size); without `x` the error says how to build it. Chapter "your_model"."""
    if not isinstance(model, keras.Model):
        raise TypeError(f"expected a Keras model (keras.Model or keras.Sequential), got {type(model).__name__}")
    if isinstance(model, keras.Sequential) and not model.built:
        if x is None:
            raise ValueError(
                f"the Sequential model {model.name!r} has not been built yet, so its layers have no outputs: "
                "start it with keras.Input(shape=(224, 224, 3)), or call model.build((None, 224, 224, 3)) with "
                "your image size"
            )
        shape = np.shape(x)
        if len(shape) != 4:
            raise ValueError(
                f"expected a preprocessed batch of shape (N, height, width, channels) to build the Sequential "
                f"model {model.name!r}, got {shape}; use vggbook.preprocess(image) to make one"
            )
        try:
            model.build((None, *shape[1:]))
        except Exception as err:  # Keras' own message, said once, with what was tried
            raise ValueError(
                f"could not build the Sequential model {model.name!r} for images of shape {shape[1:]}: {err}"
            ) from None
    try:
        inputs = model.inputs
    except AttributeError:
        inputs = None
    if not inputs:
        raise ValueError(
            f"model {model.name!r} is a subclassed keras.Model, whose layers have no outputs the helper can read: "
            "write it as a Functional model (keras.Model(inputs, outputs)) or a keras.Sequential"
        )
    if len(inputs) != 1:
        raise ValueError(f"model {model.name!r} takes {len(inputs)} inputs; the helper's figures need one image input")
    if len(inputs[0].shape) != 4:
        raise ValueError(
            f"model {model.name!r} takes inputs of shape {tuple(inputs[0].shape)}; the helper's figures need an image "
            "model that takes batches of shape (N, height, width, channels)"
        )
    return model


def _input_tensors(layer: keras.layers.Layer) -> list:
    """The symbolic tensors a layer of a built model was called on."""
    x = layer.input
    return list(x) if isinstance(x, list | tuple) else [x]


def _consumers(model: keras.Model) -> dict[str, list[keras.layers.Layer]]:
    """{layer name: the model's layers that read its output}, from the model's graph."""
    found: dict[str, list[keras.layers.Layer]] = {layer.name: [] for layer in model.layers}
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        for tensor in _input_tensors(layer):
            producer = tensor._keras_history.operation
            if producer.name in found:
                found[producer.name].append(layer)
    return found


def _shown(conv: keras.layers.Layer, read_by: dict[str, list[keras.layers.Layer]]) -> keras.layers.Layer:
    """The layer whose output shows what convolution `conv` computes: `conv` itself, unless it has no activation of
    its own and is followed, as the only reader each time, by an optional BatchNormalization and then an activation
    layer (VGG16-BN's and ResNet's conv → batch norm → ReLU): then that activation layer."""
    if getattr(conv, "activation", keras.activations.linear) is not keras.activations.linear:
        return conv
    current = conv
    for step in (keras.layers.BatchNormalization, ACTIVATIONS):
        readers = read_by[current.name]
        if len(readers) == 1 and isinstance(readers[0], step):
            current = readers[0]
        elif step is keras.layers.BatchNormalization:
            continue  # no batch norm: an activation may follow the convolution directly
        else:
            return conv
    return current


def default_layers(model: keras.Model) -> list[str]:
    """The layers whose outputs the book shows: one map per convolution (Conv2D, DepthwiseConv2D, SeparableConv2D,
    Conv2DTranspose) and every spatial pool (MaxPooling2D, AveragePooling2D), in the model's order. A
    convolution's map is its own output, or, where it is followed by batch norm and an activation layer (the
    batch-norm variant of VGG16, ResNet's conv → BN → ReLU), that activation's output. VGG16: 13 convolutions and
    5 pools; ResNet50: 53 convolutions and 1 pool. Chapter "block1"; chapter "your_model" for other models."""
    ensure_built(model)
    read_by = _consumers(model)
    names = []
    for layer in model.layers:
        if isinstance(layer, POOLS):
            names.append(layer.name)
        elif isinstance(layer, CONVOLUTIONS):
            names.append(_shown(layer, read_by).name)
    return names


def check_layer_names(model: keras.Model, names: Iterable[str]) -> list[str]:
    """`names` as a list, or a ValueError naming the unknown ones with the model's closest names (all names of a
    small model)."""
    names = [names] if isinstance(names, str) else list(names)
    known = [layer.name for layer in model.layers]
    unknown = [n for n in names if n not in known]
    if unknown:
        message = f"unknown layer name(s) {unknown} in model {model.name!r}; "
        if len(known) < LIST_ALL_BELOW:
            raise ValueError(message + f"valid names: {', '.join(known)}")
        close = {n: difflib.get_close_matches(str(n), known, n=5, cutoff=0.6) for n in unknown}
        hints = "; ".join(f"for {n!r} did you mean {', '.join(c)}?" for n, c in close.items() if c)
        raise ValueError(
            message
            + (hints + "; " if hints else "")
            + f"it has {len(known)} layers: print([layer.name for layer in model.layers]) lists them"
        )
    return names


def _as_batch(model: keras.Model, x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    expected = tuple(model.input_shape[1:])
    if x.ndim != 4:
        raise ValueError(
            f"expected a preprocessed batch of shape (N, {', '.join(map(str, expected))}), got {x.shape}; "
            "use vggbook.preprocess(image) to make one"
        )
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise ValueError(
            f"expected a batch of numbers, got an array of dtype {x.dtype}; use vggbook.preprocess(image) to make one"
        )
    if any(e is not None and e != s for e, s in zip(expected, x.shape[1:], strict=True)):
        height, width, channels = expected
        if channels is not None and channels != x.shape[-1]:
            fix = f"it reads images of {channels} channels"
        elif height is not None and height == width:
            fix = f"make {height}×{width} images, e.g. vggbook.preprocess(vggbook.load_image(path, size={height}))"
        else:
            fix = f"make images of {height}×{width} pixels"
        raise ValueError(
            f"input of shape {x.shape} does not fit model {model.name!r}, "
            f"which takes (N, {', '.join(map(str, expected))}): {fix}"
        )
    return x.astype(np.float32, copy=False)


def feature_maps(model: keras.Model, x: np.ndarray, layers: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """{layer name: output as NumPy array} for the requested layers (default: `default_layers`, one map per
    convolution and every pool), computed in ONE forward pass of a compiled Functional view of `model`, kept for
    later calls with the same layers. A Sequential model not yet built is built for `x`'s image shape. Chapter
    "block1"; chapter "your_model" for other models."""
    ensure_built(model, x)
    names = default_layers(model) if layers is None else check_layer_names(model, layers)
    if not names:
        raise ValueError(
            f"model {model.name!r} has no convolution or pooling layer to show: pass layers=[...] naming the layers "
            "whose outputs you want"
        )
    x = _as_batch(model, x)
    extractor = _cached(model, ("features", *names), lambda: _compiled_extractor(model, names))
    values = extractor(tf.constant(x))
    return {name: keras.ops.convert_to_numpy(values[name]) for name in names}


def _compiled_extractor(model: keras.Model, names: list[str]) -> Callable:
    """A Functional view of `model` returning the named layers' outputs, as ONE TensorFlow graph: run eagerly,
    Keras dispatches layer by layer in Python (about 15 % slower for VGG16, benchmarks/matmul_ratio.py). One
    trace per batch size, fewer with reduce_retracing."""
    # a dict of outputs: with a list, a one-output model returns a bare tensor, not a list
    outputs = {n: model.get_layer(n).output for n in names}
    view = keras.Model(model.inputs[0], outputs, name=f"{model.name}_features")
    # a partial of the view's own call, not a lambda: tf.function keys its traces on the function, and a new
    # lambda per model made TensorFlow warn about retracing once several models had been seen
    return tf.function(functools.partial(view.__call__, training=False), reduce_retracing=True)
