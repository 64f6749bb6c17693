"""Looking inside a trained (or untrained) network with gradients: the effective receptive
field (block chapters), Grad-CAM and activation maximisation (chapters "classifier", "training"),
and ImageNet's class names for reading the classifier's output (chapter "classifier")."""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import keras
import numpy as np
import tensorflow as tf

from vggbook.features import CONVOLUTIONS, _as_batch, _cached, check_layer_names, ensure_built
from vggbook.images import CAFFE_MEAN_BGR, deprocess
from vggbook.weights import WeightsError, cached_file

__all__ = [
    "ActivationMaximum",
    "activation_maximisation",
    "effective_receptive_field",
    "grad_cam",
    "imagenet_class_names",
    "last_convolution",
    "mass_on_mask",
    "top_k_classes",
]

# The class index `keras.applications.imagenet_utils.decode_predictions` reads, with Keras' own md5:
# {"0": ["n01440764", "tench"], …, "999": ["n15075141", "toilet_tissue"]} in the order of VGG's outputs.
CLASS_INDEX_URL = "https://storage.googleapis.com/download.tensorflow.org/data/imagenet_class_index.json"
CLASS_INDEX_MD5 = "c2c37ea517e94d9795004a39431a14cb"

LEAK = 0.1  # activation maximisation: slope below zero of the ReLU it climbs (see _probe)


def _spatial_output(model: keras.Model, layer: str) -> keras.KerasTensor:
    """`layer`'s output, after checking the name exists and the output is a (N, h, w, C) map."""
    (layer,) = check_layer_names(model, [layer])
    output = model.get_layer(layer).output
    if len(output.shape) != 4:
        convs = [lyr.name for lyr in model.layers if isinstance(lyr, CONVOLUTIONS)]
        example = f" such as {convs[-1]!r}" if convs else ""
        raise ValueError(
            f"layer {layer!r} has no spatial output (shape {tuple(output.shape)}); "
            f"choose a convolution or pooling layer{example}"
        )
    return output


def last_convolution(model: keras.Model) -> str:
    """The name of the model's last convolution (VGG16: `block5_conv3`; ResNet50: `conv5_block3_3_conv`), or a
    ValueError for a model without one: `grad_cam`'s default layer (chapter "your_model")."""
    convs = [layer.name for layer in model.layers if isinstance(layer, CONVOLUTIONS)]
    if not convs:
        raise ValueError(f"model {model.name!r} has no convolution: pass layer= naming the spatial layer to explain")
    return convs[-1]


def effective_receptive_field(
    model: keras.Model, x: np.ndarray, layer: str, row: int | None = None, col: int | None = None
) -> np.ndarray:
    """|∂ unit / ∂ input| summed over colour channels, shape (H, W): how much each input pixel
    moves the sum over channels of unit (row, col) of `layer` (default: the centre unit).
    Luo et al. (2016); the block chapters draw it beside the theoretical receptive field, chapter
    "your_model" on ResNet50."""
    ensure_built(model, x)
    output = _spatial_output(model, layer)
    h, w = output.shape[1:3]
    row = h // 2 if row is None else row
    col = w // 2 if col is None else col
    if not (0 <= row < h and 0 <= col < w):
        raise ValueError(f"unit ({row}, {col}) is outside {layer!r}'s {h}×{w} map")
    probe = _cached(model, ("erf", layer), lambda: keras.Model(model.inputs[0], output))
    inputs = tf.convert_to_tensor(_as_batch(model, x)[:1])
    with tf.GradientTape(watch_accessed_variables=False) as tape:  # the input's gradient only, not the kernels'
        tape.watch(inputs)
        unit = tf.reduce_sum(probe(inputs, training=False)[0, row, col, :])
    return np.abs(tape.gradient(unit, inputs)[0].numpy()).sum(axis=-1)


def _class_scores(model: keras.Model) -> tuple[keras.KerasTensor, Callable[[tf.Tensor], tf.Tensor]]:
    """The tensor entering the model's last layer, and the map from it to the PRE-softmax class scores."""
    if len(model.outputs) != 1:
        raise ValueError(f"grad_cam needs a model with one output; {model.name!r} has {len(model.outputs)}")
    head = model.layers[-1]
    if isinstance(head, keras.layers.Dense):

        def logits(h: tf.Tensor) -> tf.Tensor:  # the Dense layer without its activation, on its live weights
            z = keras.ops.matmul(h, head.kernel)
            return z + head.bias if head.use_bias else z

        return head.input, logits
    if isinstance(head, keras.layers.Activation | keras.layers.Softmax):
        return head.input, lambda h: h
    raise ValueError(
        f"grad_cam needs a model ending in a Dense or softmax layer; {model.name!r} ends in "
        f"{type(head).__name__} {head.name!r}"
    )


def _class_indices(class_index: int | Sequence[int] | np.ndarray | None, n: int, classes: int) -> np.ndarray | None:
    """`class_index` checked: None stays None (the top class), an int or one int per image becomes
    (n,), an (n, K) array of K classes per image stays (n, K)."""
    if class_index is None:
        return None
    indices = np.atleast_1d(np.asarray(class_index))
    if indices.ndim not in (1, 2) or indices.size == 0 or indices.dtype.kind not in "iu":
        raise TypeError(
            f"class_index must be an int, one int per image or an (images, K) array of ints, got {class_index!r}"
        )
    if indices.ndim == 1 and len(indices) == 1:
        indices = np.repeat(indices, n)
    if len(indices) != n:
        raise ValueError(f"class_index has {len(indices)} entries for a batch of {n} images")
    bad = indices[(indices < 0) | (indices >= classes)]
    if bad.size:
        raise ValueError(f"class index {bad.tolist()} out of range: the model has {classes} classes (0–{classes - 1})")
    return indices


def _cam(grads: tf.Tensor | None, maps: tf.Tensor, layer: str, model: keras.Model) -> np.ndarray:
    """Grad-CAM from ∂y_c/∂A and A (both (n, h, w, C)): (n, h, w), each divided by its peak."""
    if grads is None:
        raise ValueError(f"layer {layer!r} does not feed the class scores of {model.name!r}")
    weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)  # α_k^c: one weight per channel
    cam = tf.nn.relu(tf.reduce_sum(weights * maps, axis=-1)).numpy()
    peak = cam.max(axis=(1, 2), keepdims=True)
    return np.divide(cam, peak, out=np.zeros_like(cam), where=peak > 0)


def _only_through(model: keras.Model, fmap: keras.KerasTensor, pre: keras.KerasTensor) -> bool:
    """Whether every path in `model`'s graph from its input to `pre` passes through `fmap`: then the part
    of the model after `fmap` can run on `fmap` alone. False where a branch goes around it, as ResNet's
    shortcut goes around the last convolution of a block. The graph is walked here rather than left to
    `keras.Model(fmap, pre)`, which raises a ValueError in Keras 3.15 but in Keras 3.13 builds a model that
    fails with a bare KeyError when called."""
    inputs = {id(t) for t in model.inputs}
    seen, todo = set(), [pre]
    while todo:
        tensor = todo.pop()
        if tensor is fmap or id(tensor) in seen:
            continue
        seen.add(id(tensor))
        if id(tensor) in inputs:
            return False
        operation, node_index, _ = tensor._keras_history
        parents = operation._inbound_nodes[node_index].input_tensors
        if not parents:  # an input of the graph that is not below fmap
            return False
        todo.extend(parents)
    return True


def _scores_and_maps(
    view: Callable, inputs: tf.Tensor, logits_of: Callable, chosen: tf.Tensor | None
) -> tuple[tf.Tensor | None, tf.Tensor]:
    """∂y_c/∂A and A for `view` (a batch → (A, input of the last layer)); `chosen` = one class per row,
    None = each row's top class. Rows do not interact in inference, so the gradient of the sum of the
    chosen scores gives each row its own ∂y_c/∂A."""
    with tf.GradientTape(watch_accessed_variables=False) as tape:  # no kernel gradients (fc1's: 411 MB)
        tape.watch(inputs)  # so that the path to the maps is recorded
        maps, h = view(inputs, training=False)
        scores = logits_of(h)
        chosen = tf.argmax(scores, axis=-1) if chosen is None else chosen
        score = tf.reduce_sum(tf.gather(scores, chosen, axis=1, batch_dims=1))
    return tape.gradient(score, maps), maps, scores


def grad_cam(
    model: keras.Model,
    x: np.ndarray,
    class_index: int | Sequence[int] | np.ndarray | None = None,
    layer: str | None = None,
    return_scores: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Grad-CAM (Selvaraju et al. 2017): where in `layer`'s map the evidence for a class lies.

    The class score is the PRE-softmax one, y_c: gradients of the softmax output p_c would mix
    in every other class and vanish as p_c saturates. It is taken from a Functional view that
    returns `layer`'s output and the *input* of the model's last Dense layer, and y_c is
    recomputed from that layer's own kernel and bias with no activation: unlike a copy of the
    layer with a linear activation it reads the live weights (right while the model trains), and
    unlike switching the activation off (tf-keras-vis' `ReplaceToLinear`, on a clone) it leaves
    the model untouched. Then: ∂y_c/∂A (A = the layer's output), averaged over h and w (one
    weight per channel), weighted sum of A's channels, ReLU, divided by its maximum.

    `x` is a preprocessed batch (N, H, W, C); `class_index` None = each image's top class, an
    int, or one int per image: returns (h, w) at the layer's resolution for one image, (N, h, w)
    for several. An (N, K) array asks for K classes per image and returns (N, K, h, w). Where every
    path from the input to the scores passes through `layer`, the network runs once up to it, outside the
    gradient tape, and only the part after it on the tape, once per class asked for; where a branch goes
    around it (ResNet's shortcut beside a block's last convolution), the whole network runs on the tape
    once per class. A map with no
    positive evidence is all zeros. `layer` defaults to the model's last convolution (`last_convolution`:
    VGG16's `block5_conv3`). Any Keras classifier whose last layer is a Dense layer (with or without its
    softmax) or a softmax works. With `return_scores=True` it also returns the pre-softmax class
    scores the maps were computed from, (classes,) for one image, (N, classes) for several: the rank
    of the explained class among them (chapter "classifier", the randomisation check) needs no
    second forward pass. Chapters "classifier", "training", "your_model".
    """
    ensure_built(model, x)
    layer = last_convolution(model) if layer is None else layer
    fmap = _spatial_output(model, layer)
    pre, logits_of = _class_scores(model)
    x = _as_batch(model, x)
    classes = _class_indices(class_index, len(x), model.output_shape[-1])

    def view() -> keras.Model:  # input → (the layer's map, the input of the last layer), built once per layer
        return _cached(model, ("grad_cam", layer), lambda: keras.Model(model.inputs[0], [fmap, pre]))

    def result(cam: np.ndarray, scores: tf.Tensor, squeeze: bool) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        if not return_scores:
            return cam
        scores = keras.ops.convert_to_numpy(scores)[:: len(scores) // len(x)]  # one row per image
        return cam, scores[0] if squeeze else scores

    one_each = classes is None or classes.ndim == 1
    per_class = 1 if one_each else classes.shape[1]
    chosen = None if classes is None else tf.constant(classes.reshape(-1))  # row i·K + k: image i, its k-th class
    if _cached(model, ("only_through", layer), lambda: _only_through(model, fmap, pre)):
        # The network once up to `layer`, outside the gradient tape, and only the part after it on the tape, once
        # per class: the backward pass runs through the head alone (on the whole network, TensorFlow's tape also
        # computed every convolution's gradients below `layer`, twice the forward pass's time).
        upto = _cached(model, ("upto", layer), lambda: keras.Model(model.inputs[0], fmap))
        after = _cached(model, ("after", layer), lambda: keras.Model(fmap, pre))
        maps = tf.repeat(upto(tf.convert_to_tensor(x), training=False), per_class, axis=0)  # (N·K, h, w, C)

        def tail(a: tf.Tensor, training: bool = False) -> tuple[tf.Tensor, tf.Tensor]:
            return a, after(a, training=training)

        grads, maps, scores = _scores_and_maps(tail, maps, logits_of, chosen)
    else:  # a branch around `layer` also reaches the scores: the whole network once per class
        inputs = tf.repeat(tf.convert_to_tensor(x), per_class, axis=0)
        grads, maps, scores = _scores_and_maps(view(), inputs, logits_of, chosen)
    cam = _cam(grads, maps, layer, model)
    if one_each:
        return result(cam[0] if len(cam) == 1 else cam, scores, len(cam) == 1)
    return result(cam.reshape(len(x), per_class, *cam.shape[1:]), scores, False)


def mass_on_mask(heatmap: np.ndarray, mask: np.ndarray, *, empty_as_uniform: bool = False) -> float | np.ndarray:
    """The share of a map's mass that lies inside a mask: sum(map · mask) / sum(map).

    `heatmap` is (h, w) or a batch (N, h, w); `mask` is boolean or a share in [0, 1], on the map's grid
    or on a finer one whose sides are whole multiples of the map's (an image's mask for a Grad-CAM map):
    then each map position counts the share of its patch inside the mask. Broadcasts like NumPy (one
    mask for many maps, or one per map). A map that is zero everywhere gives nan, or with
    `empty_as_uniform=True` the mask's mean cover, as a uniform map would. Chapters "classifier"
    (the ring next to the padding), "training" (Grad-CAM on the shapes).
    """
    heat = np.asarray(heatmap, dtype=float)
    cover = np.asarray(mask, dtype=float)
    h, w = heat.shape[-2:]
    big_h, big_w = cover.shape[-2:]
    if big_h % h or big_w % w:
        raise ValueError(f"a mask of {big_h}×{big_w} does not split into the map's {h}×{w} positions")
    if (big_h, big_w) != (h, w):  # each position: the share of its patch inside the mask
        cover = cover.reshape(*cover.shape[:-2], h, big_h // h, w, big_w // w).mean(axis=(-3, -1))
    heat, cover = np.broadcast_arrays(heat, cover)
    total = heat.sum(axis=(-2, -1))
    inside = (heat * cover).sum(axis=(-2, -1))
    fallback = cover.mean(axis=(-2, -1)) if empty_as_uniform else np.full(np.shape(total), np.nan)
    share = np.where(total > 0, inside / np.where(total > 0, total, 1), fallback)
    return float(share) if share.ndim == 0 else share


class ActivationMaximum(NamedTuple):
    """What `activation_maximisation` returns: one image per filter and the rise it bought."""

    images: np.ndarray  # (n, h, w, 3) RGB uint8, border cropped, contrast stretched per image
    start: np.ndarray  # (n,) each filter's mean activation on its starting noise
    final: np.ndarray  # (n,) the same on the final image
    inputs: np.ndarray  # (n, size, size, 3) the final images as the network reads them (preprocessed, uncropped)


def _probe(model: keras.Model, layer: str, size: int) -> Callable:
    """input of `size`×`size` → (what the ascent climbs, `layer`'s output). Where `layer` ends in
    a ReLU the ascent climbs a leaky ReLU of the same pre-activation instead (slope LEAK below
    zero): a ReLU that never fires on the starting noise passes no gradient, and its filter would
    never move; above zero the two agree. Up to `layer`'s input: at the model's own input size
    a Functional view; otherwise the layers called in turn, which needs them to form a chain
    (a Functional model checks its input's shape, its layers do not)."""
    target = model.get_layer(layer)
    if tuple(model.input_shape[1:3]) == (size, size):
        upstream = keras.Model(model.inputs[0], target.input)
    else:
        chain, previous = [], model.inputs[0]
        for lyr in model.layers:
            if isinstance(lyr, keras.layers.InputLayer):
                continue
            if lyr.input is not previous:
                raise ValueError(
                    f"size={size} differs from {model.name!r}'s input size, which needs a model whose layers form "
                    f"a chain (as VGG and Sequential models do); {lyr.name!r} breaks it: pass size=None"
                )
            if lyr is target:
                break
            chain.append(lyr)
            previous = lyr.output

        def upstream(x: tf.Tensor, training: bool = False) -> tf.Tensor:
            for lyr in chain:
                x = lyr(x, training=training)
            return x

    def run(x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        h = upstream(x, training=False)
        if getattr(target, "activation", None) is keras.activations.relu:
            if isinstance(target, keras.layers.Activation):  # the batch-norm variant's separate ReLU
                return tf.nn.leaky_relu(h, LEAK), tf.nn.relu(h)
            if isinstance(target, keras.layers.Conv2D):
                z = target.convolution_op(h, target.kernel)
                z = z + target.bias if target.use_bias else z
                return tf.nn.leaky_relu(z, LEAK), tf.nn.relu(z)
        out = target(h, training=False)
        return out, out

    return run


def _own_means(maps: tf.Tensor, onehot: tf.Tensor) -> tf.Tensor:
    """(n,) mean over positions of image i's own filter i, from maps (n, h, w, C)."""
    return tf.reduce_sum(tf.reduce_mean(maps, axis=(1, 2)) * onehot, axis=-1)


def _random_transforms(
    rng: np.random.Generator, n: int, size: int, jitter: int, scale: float, rotate: float
) -> np.ndarray:
    """(n, 8) projective transforms for `keras.ops.image.affine_transform`, one per image: each maps
    an output pixel to the input point it reads — a rotation by up to ±`rotate` degrees and a zoom
    by up to ±`scale` about the centre, then a shift by a whole number of pixels up to ±`jitter`."""
    angle = np.deg2rad(rng.uniform(-rotate, rotate, n))
    zoom = rng.uniform(1 - scale, 1 + scale, n)
    shift = rng.integers(-jitter, jitter + 1, (n, 2))
    cos, sin, centre = np.cos(angle) / zoom, np.sin(angle) / zoom, (size - 1) / 2
    # input = R(angle) / zoom · (output − centre) + centre + shift
    x0 = centre - cos * centre + sin * centre + shift[:, 0]
    y0 = centre - sin * centre - cos * centre + shift[:, 1]
    zeros = np.zeros(n)
    return np.stack([cos, -sin, x0, sin, cos, y0, zeros, zeros], axis=1).astype(np.float32)


def _spectrum_weights(size: int, decay: float) -> np.ndarray:
    """(size, size // 2 + 1) weights of `rfft2d` frequencies: 1 / f^decay, f in cycles per image
    (at least 1), the largest weight 1. Multiplying a gradient's spectrum by them is one plain
    gradient step taken on Fourier coefficients scaled by 1 / f^(decay/2) (Olah et al. 2017)."""
    fy = np.fft.fftfreq(size)[:, None] * size
    fx = np.fft.rfftfreq(size)[None, :] * size
    return (1.0 / np.maximum(np.hypot(fx, fy), 1.0) ** decay).astype(np.float32)


def _ascent_step(probe: Callable) -> Callable:
    """One compiled step of regularised gradient ascent for a batch of images, image i raising
    filter i: each image is seen through its own random transform (`transforms`, (n, 8)), the
    gradient's spatial spectrum is multiplied by `spectrum` (flat = plain gradient) and divided
    by its RMS, and the pixels are kept in 0–255."""
    low, high = tf.constant(-CAFFE_MEAN_BGR), tf.constant(255.0 - CAFFE_MEAN_BGR)

    @tf.function(reduce_retracing=True)
    def step(
        x: tf.Tensor, onehot: tf.Tensor, step_size: tf.Tensor, transforms: tf.Tensor, spectrum: tf.Tensor
    ) -> tf.Tensor:
        with tf.GradientTape(watch_accessed_variables=False) as tape:  # the image's gradient, not the kernels'
            tape.watch(x)
            seen = keras.ops.image.affine_transform(x, transforms, interpolation="bilinear", fill_mode="reflect")
            climbed, _ = probe(seen)
            objective = tf.reduce_sum(_own_means(climbed, onehot))
        grad = tf.transpose(tape.gradient(objective, x), (0, 3, 1, 2))  # rfft2d works on the last two axes
        size = tf.shape(grad)[2:]
        grad = tf.signal.irfft2d(tf.signal.rfft2d(grad) * tf.cast(spectrum, tf.complex64), fft_length=size)
        grad = tf.transpose(grad, (0, 2, 3, 1))
        # Divided by its RMS per image: every step moves pixels by ~step_size, whatever the gradient's scale.
        grad /= tf.sqrt(tf.reduce_mean(tf.square(grad), axis=(1, 2, 3), keepdims=True)) + 1e-12
        return tf.clip_by_value(x + step_size * grad, low, high)

    return step


def activation_maximisation(
    model: keras.Model,
    layer: str,
    filters: Sequence[int],
    *,
    size: int | None = None,
    steps: int = 128,
    step_size: float = 2.0,
    noise: float = 8.0,
    jitter: int | None = None,
    scale: float = 0.05,
    rotate: float = 5.0,
    decay: float = 1.0,
    border: int | None = None,
    seed: int = 0,
) -> ActivationMaximum:
    """Images that raise the mean activation of each filter's channel in `layer`, found by regularised
    gradient ascent on the input (Erhan et al. 2009; regularised and preconditioned as in Mordvintsev et
    al. 2015, Yosinski et al. 2015 and Olah et al. 2017). Chapters "classifier", "training".

    All filters are optimised together, one image each, one forward/backward pass per step.
    Start: grey plus seeded Gaussian noise (std `noise`, pixel units) in preprocessed (caffe)
    space. Each step (`steps` of them):
    - transformation robustness: the network sees each image shifted by up to ±`jitter` pixels
      (default size // 16), zoomed by up to ±`scale` and rotated by up to ±`rotate` degrees, drawn
      afresh per step and image (reflected at the edges), so the image must raise the filter
      wherever it lands;
    - a smooth step, which Olah et al. call preconditioning (the objective is unchanged, only the
      path): the gradient's spatial spectrum is multiplied by 1/f^`decay` (f = frequency in cycles
      per image, at least 1), the plain gradient step on an image parameterised by Fourier
      coefficients scaled by 1/f^(decay/2), which weights each step towards coarse patterns;
    - the gradient is divided by its RMS, `step_size` × it added, and pixels kept in 0–255.
    Setting `jitter`, `scale`, `rotate` and `decay` to 0 gives plain gradient ascent.
    Where the layer ends in a ReLU the ascent climbs a leaky ReLU of the same input, so that a
    filter silent on the starting noise still gets a gradient (a ReLU that never fires passes none).
    `size` defaults to the model's input size (any size works for chain models like VGG).
    The returned images are RGB uint8 with `border` pixels (default size // 8, where padding
    distorts) cropped and each contrast-stretched (1st–99th percentile); `start` and `final` hold
    the filters' mean activations (true ReLU, untransformed image) before and after; `inputs`
    the final images as the network reads them (preprocessed, uncropped, not stretched).
    """
    out = _spatial_output(model, layer)
    filters = np.atleast_1d(np.asarray(filters))
    channels = out.shape[-1]
    if filters.ndim != 1 or filters.size == 0 or filters.dtype.kind not in "iu":
        raise TypeError(f"filters must be a non-empty sequence of channel indices, got {filters!r}")
    if ((filters < 0) | (filters >= channels)).any():
        raise ValueError(f"filter index out of range: {layer!r} has {channels} channels (0–{channels - 1})")
    height, width, colours = model.input_shape[1:]
    if colours != 3:
        raise ValueError(f"activation_maximisation makes caffe-preprocessed RGB inputs; {model.name!r} takes {colours}")
    size = height if size is None else size
    if size is None or size < 1:
        raise ValueError(f"size must be a positive number of pixels, got {size}")
    border = size // 8 if border is None else border
    if not 0 <= border < size // 2:
        raise ValueError(f"border must be between 0 and {size // 2 - 1} pixels for size {size}, got {border}")
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    jitter = size // 16 if jitter is None else jitter
    if not (isinstance(jitter, int | np.integer) and 0 <= jitter < size // 2):
        raise ValueError(f"jitter must be a whole number of pixels between 0 and {size // 2 - 1}, got {jitter}")
    if not 0 <= scale < 0.5:
        raise ValueError(f"scale must be a fraction between 0 and 0.5 (0.05 = ±5 %), got {scale}")
    if not 0 <= rotate <= 45:
        raise ValueError(f"rotate must be between 0 and 45 degrees, got {rotate}")
    if not 0 <= decay <= 4:
        raise ValueError(f"decay must be between 0 (plain gradient) and 4, got {decay}")

    probe = _cached(model, ("probe", layer, size), lambda: _probe(model, layer, size))
    step = _cached(model, ("ascent", layer, size), lambda: _ascent_step(probe))
    rng = np.random.default_rng(seed)
    n = len(filters)
    grey = 128.0 - CAFFE_MEAN_BGR  # mid-grey, preprocessed
    x = tf.constant((grey + noise * rng.standard_normal((n, size, size, 3))).astype(np.float32))
    onehot = tf.one_hot(filters, channels)
    start = _own_means(probe(x)[1], onehot).numpy()
    rate = tf.constant(step_size, tf.float32)
    spectrum = tf.constant(_spectrum_weights(size, decay))
    for _ in range(steps):
        x = step(x, onehot, rate, tf.constant(_random_transforms(rng, n, size, jitter, scale, rotate)), spectrum)
    final = _own_means(probe(x)[1], onehot).numpy()

    rgb = deprocess(x.numpy()[:, border : size - border, border : size - border]).reshape(n, -1, 3)
    lo, hi = np.percentile(rgb, [1, 99], axis=(1, 2), keepdims=True)
    stretched = np.clip((rgb - lo) / np.maximum(hi - lo, 1e-6) * 255, 0, 255).round().astype(np.uint8)
    crop = size - 2 * border
    return ActivationMaximum(stretched.reshape(n, crop, crop, 3), start, final, x.numpy())


def imagenet_class_names(download: bool = True) -> list[str]:
    """ImageNet's 1000 class names in the order of VGG's outputs ('tench', 'goldfish', …), from
    Keras' `imagenet_class_index.json`: read from the Keras cache ("models" folder), fetched once
    if `download`, md5-checked. Raises `WeightsError` at once where it can't be had (offline, or
    with VGGBOOK_OFFLINE=1). Chapter "classifier"."""
    path = cached_file(CLASS_INDEX_URL, CLASS_INDEX_MD5, download=download)
    try:
        index = json.loads(path.read_text())
        return [index[str(i)][1] for i in range(len(index))]
    except (ValueError, KeyError, IndexError, TypeError) as err:
        raise WeightsError(f"{path} is not a class index like {{'0': [wnid, name], …}}: {err!r}") from None


def top_k_classes(
    probabilities: np.ndarray, k: int = 5, names: Sequence[str] | None = None
) -> list[list[tuple[int, str, float]]]:
    """Per image, the `k` most probable classes as (index, name, probability), best first;
    without `names` a class is called "class i". Chapter "classifier"."""
    probabilities = np.asarray(probabilities)
    if probabilities.ndim != 2:
        raise ValueError(f"expected probabilities of shape (N, classes), got {probabilities.shape}")
    classes = probabilities.shape[1]
    if not 1 <= k <= classes:
        raise ValueError(f"k must be between 1 and {classes}, got {k}")
    if names is not None and len(names) != classes:
        raise ValueError(f"{len(names)} class names for {classes} classes")
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    name = (lambda i: names[i]) if names is not None else (lambda i: f"class {i}")
    return [[(int(i), name(i), float(row[i])) for i in top] for row, top in zip(probabilities, order, strict=True)]


# ---------------------------------------------------------------------------------------------------------------
# The cascading randomisation test (Adebayo et al. 2018), chapter "classifier": re-draw a trained network's
# weights layer by layer from the top and watch whether an explanation changes. The weights are re-drawn in
# place and put back afterwards from a copy on disk, a slab of rows at a time (fc1's kernel alone is 411 MB):
# rows are read with a gather and written with a scatter, which touch only those rows (a sliced `assign`
# copies the whole variable first), and the copy goes through plain file reads and writes, not a memory map,
# whose pages would count as the process's memory.

SLAB_BYTES = 16 * 2**20  # at most this much of a weight array is drawn, saved or restored at a time

__all__ += ["reinitialise", "weights_kept"]  # the list at the top of the module, extended


def _slabs(shape: Sequence[int]) -> Iterator[tf.Tensor]:
    """Row indices along the first axis of a float32 array of `shape`, each slab at most SLAB_BYTES."""
    row = 4 * int(np.prod(shape[1:], dtype=np.int64))
    step = max(1, SLAB_BYTES // max(row, 1))
    for start in range(0, shape[0], step):
        yield tf.range(start, min(start + step, shape[0]))


def _write_rows(variable: keras.Variable, rows: tf.Tensor, values: np.ndarray) -> None:
    variable.value.scatter_update(tf.IndexedSlices(tf.constant(values, dtype=variable.dtype), rows))


def _glorot_limit(shape: Sequence[int]) -> float:
    """The bound of Keras' `glorot_uniform` for a kernel of `shape`: sqrt(6 / (fan_in + fan_out))."""
    receptive = int(np.prod(shape[:-2], dtype=np.int64)) if len(shape) > 2 else 1
    fan_in, fan_out = shape[-2] * receptive, shape[-1] * receptive
    return float(np.sqrt(6.0 / (fan_in + fan_out)))


def reinitialise(layer: keras.layers.Layer, seed: int) -> None:
    """Draw `layer`'s weights anew, in place, as Keras starts a Conv2D or Dense layer: the kernel
    from Glorot's uniform distribution (seeded: `seed`), the bias zero. A slab of rows at a time,
    so that even fc1's 102.8 M weights need only 16 MB beyond themselves. Chapter "classifier"
    (the cascading randomisation test of Adebayo et al. 2018)."""
    kernel = getattr(layer, "kernel", None)
    if kernel is None:
        raise ValueError(
            f"layer {layer.name!r} ({type(layer).__name__}) has no kernel to re-draw; choose a Conv2D or Dense layer"
        )
    shape = tuple(kernel.shape)
    limit = _glorot_limit(shape)
    rng = np.random.default_rng(seed)
    for rows in _slabs(shape):
        uniform = rng.random((len(rows), *shape[1:]), dtype=np.float32)  # in [0, 1)
        _write_rows(kernel, rows, (2 * uniform - 1) * np.float32(limit))
    bias = getattr(layer, "bias", None)
    if bias is not None:
        bias.assign(np.zeros(bias.shape, dtype=np.float32))


@contextlib.contextmanager
def weights_kept(model: keras.Model, layers: Sequence[str]) -> Iterator[None]:
    """Keep the weights of `layers` safe while the `with` block changes them: on entry each weight
    is copied to a temporary file, on exit (also after an error) it is copied back and the files
    removed, a slab at a time, so that memory grows by 16 MB and not by the weights' size (fc1:
    411 MB). Chapter "classifier" (the cascading randomisation test)."""
    names = check_layer_names(model, list(layers))
    weights = [w for name in names for w in model.get_layer(name).weights]
    with tempfile.TemporaryDirectory(prefix="vggbook-weights-") as folder:
        files = [Path(folder) / f"{k}.float32" for k in range(len(weights))]
        for weight, file in zip(weights, files, strict=True):
            with file.open("wb") as out:
                for rows in _slabs(weight.shape):
                    out.write(tf.gather(weight.value, rows).numpy().tobytes())
        try:
            yield
        finally:
            for weight, file in zip(weights, files, strict=True):
                with file.open("rb") as saved:
                    for rows in _slabs(weight.shape):
                        count = len(rows) * int(np.prod(weight.shape[1:], dtype=np.int64))
                        values = np.fromfile(saved, dtype=np.float32, count=count)
                        _write_rows(weight, rows, values.reshape(len(rows), *weight.shape[1:]))
