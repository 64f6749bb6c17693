"""VGG16's convolutional base on new data: chapter "transfer".

`transfer_dataset` draws an offline texture set (stripes, checks, dots, speckles) with NumPy and OpenCV,
`radial_spectrum` is the hand-made texture feature the chapter's baseline reads, `pooled_features` runs a model
over a batch of images in slices and returns chosen layers' outputs (globally average-pooled or not),
`train_linear` fits a softmax (logistic) classifier to features (SciPy's L-BFGS, to convergence),
`count_trainable` counts a model's trainable parameters, `clone_top` copies the layers of a sequential base
from a given layer on, with their weights, as a model of its own, and `restart` starts a compiled model's training
afresh without compiling it again.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import keras
import numpy as np
import scipy.optimize

from vggbook.features import feature_maps

__all__ = [
    "TEXTURES",
    "LinearClassifier",
    "TransferData",
    "clone_top",
    "count_trainable",
    "pooled_features",
    "radial_spectrum",
    "restart",
    "train_linear",
    "transfer_dataset",
]

TEXTURES = ("stripes", "checks", "dots", "speckles")


@dataclass(frozen=True)
class TransferData:
    """Train, validation and test images (RGB uint8, N×size×size×3) with integer labels into `class_names`."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]


def _smooth_field(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """A smooth random field in [0, 1]: `cells`×`cells` noise upsampled bicubically to size×size."""
    coarse = rng.random((cells, cells)).astype(np.float32)
    field = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    field -= field.min()
    return field / max(float(field.max()), 1e-6)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A cluttered background: a blend of two random colours along a smooth field, a few soft blobs and
    lines of other colours, float RGB in [0, 1]."""
    a, b = rng.random(3), rng.random(3)
    field = _smooth_field(rng, size, int(rng.integers(2, 5)))[..., None]
    image = (a * field + b * (1 - field)).astype(np.float32)
    clutter = np.zeros((size, size, 3), np.float32)
    alpha = np.zeros((size, size), np.float32)
    for _ in range(int(rng.integers(2, 6))):
        colour = tuple(float(c) for c in rng.random(3))
        mask = np.zeros((size, size), np.float32)
        if rng.random() < 0.5:
            centre = tuple(int(c) for c in rng.integers(0, size, 2))
            axes = tuple(int(c) for c in rng.integers(size // 10, size // 3, 2))
            cv2.ellipse(mask, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
        else:
            p, q = (tuple(int(c) for c in rng.integers(0, size, 2)) for _ in range(2))
            cv2.line(mask, p, q, 1.0, int(rng.integers(2, 6)))
        mask = cv2.GaussianBlur(mask, (0, 0), 2.0)
        clutter = clutter * (1 - mask[..., None]) + np.asarray(colour, np.float32) * mask[..., None]
        alpha = np.maximum(alpha, mask)
    return image * (1 - alpha[..., None]) + clutter


def _pattern(rng: np.random.Generator, kind: int, size: int) -> np.ndarray:
    """Texture `kind` (index into TEXTURES) as a soft map in [0, 1], random period, orientation and phase."""
    period = rng.uniform(7, 16)
    theta = rng.uniform(0, np.pi)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    u = (xx * np.cos(theta) + yy * np.sin(theta)) * 2 * np.pi / period + rng.uniform(0, 2 * np.pi)
    v = (-xx * np.sin(theta) + yy * np.cos(theta)) * 2 * np.pi / period + rng.uniform(0, 2 * np.pi)
    sharp = 4.0  # soft edges: tanh of a scaled sine
    if kind == 0:  # stripes
        t = np.tanh(sharp * np.sin(u))
    elif kind == 1:  # checks
        t = np.tanh(sharp * np.sin(u)) * np.tanh(sharp * np.sin(v))
    elif kind == 2:  # dots on a rotated lattice
        t = np.tanh(sharp * (np.cos(u) + np.cos(v) - 1.0))
    else:  # speckles: blurred sparse noise, thresholded into irregular blobs at a random scale
        noise = cv2.GaussianBlur(rng.standard_normal((size, size)).astype(np.float32), (0, 0), period / 5)
        t = np.tanh(sharp * (noise - noise.mean()) / (noise.std() + 1e-6) - 0.5 * sharp)
    return ((t + 1) / 2).astype(np.float32)


def _texture_image(rng: np.random.Generator, kind: int, size: int) -> np.ndarray:
    """One image: texture `kind` in a random colour over a random share of a cluttered background."""
    image = _background(rng, size)
    colour = rng.random(3).astype(np.float32)
    region = np.zeros((size, size), np.float32)
    centre = tuple(int(c) for c in rng.integers(size // 3, 2 * size // 3, 2))
    axes = tuple(int(c) for c in rng.integers(size // 3, size // 2 + 8, 2))
    cv2.ellipse(region, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
    region = cv2.GaussianBlur(region, (0, 0), 3.0)
    cover = (_pattern(rng, kind, size) * region)[..., None]
    image = image * (1 - cover) + colour * cover
    image += rng.normal(0, 0.03, image.shape).astype(np.float32)
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8)


def _split(rng: np.random.Generator, n: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    classes = len(TEXTURES)
    labels = rng.permutation(np.repeat(np.arange(classes), n // classes))
    images = np.stack([_texture_image(rng, int(k), size) for k in labels]) if n else np.zeros((0, size, size, 3))
    return images.astype(np.uint8), labels.astype(np.int64)


def transfer_dataset(train: int = 64, val: int = 32, test: int = 300, *, size: int = 96, seed: int = 0) -> TransferData:
    """A balanced set of textured images (`TEXTURES`), drawn offline: each split from its own random stream,
    the same for the same seed. Every split's size must be a positive multiple of the number of classes.
    Chapter "transfer"."""
    classes = len(TEXTURES)
    for name, n in (("train", train), ("val", val), ("test", test)):
        if not isinstance(n, int | np.integer) or n <= 0 or n % classes:
            raise ValueError(f"{name} must be a positive multiple of {classes} (the classes, balanced), got {n!r}")
    if not isinstance(size, int | np.integer) or size < 32:
        raise ValueError(f"size must be an integer of at least 32 pixels, got {size!r}")
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3)]
    (xt, yt), (xv, yv), (xs, ys) = (_split(rng, n, size) for rng, n in zip(streams, (train, val, test), strict=True))
    return TransferData(xt, yt, xv, yv, xs, ys, TEXTURES)


def radial_spectrum(images: np.ndarray, bins: int = 24) -> np.ndarray:
    """Per image, the log power of its grey levels' 2-D Fourier transform averaged over rings of equal spatial
    frequency (`bins` rings up to the Nyquist frequency), the image's mean removed: a hand-made texture feature
    that ignores colour and orientation (chapter "transfer")."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.shape[1] != images.shape[2]:
        raise ValueError(f"expected square RGB images (N, H, H, 3), got shape {images.shape}")
    grey = images.astype(np.float32).mean(axis=-1)
    grey -= grey.mean(axis=(1, 2), keepdims=True)
    power = np.abs(np.fft.fftshift(np.fft.fft2(grey), axes=(1, 2))) ** 2
    size = images.shape[1]
    yy, xx = np.mgrid[0:size, 0:size] - size // 2
    ring = np.minimum((np.hypot(yy, xx) / (size / 2) * bins).astype(int), bins)  # bins = beyond Nyquist
    counts = np.bincount(ring.ravel(), minlength=bins + 1)[:bins]
    sums = np.stack([np.bincount(ring.ravel(), weights=p.ravel(), minlength=bins + 1)[:bins] for p in power])
    share = sums / counts / (sums / counts).sum(axis=1, keepdims=True)
    return np.log(share + 1e-12).astype(np.float32)


def pooled_features(
    model: keras.Model, x: np.ndarray, layers: list[str], *, pool: bool | list[str] = True, batch_size: int = 32
) -> dict[str, np.ndarray]:
    """{layer: output} for the named layers of `model` on the already preprocessed images `x`, one forward pass
    per slice of `batch_size` images (`vggbook.feature_maps`); with `pool` True (or for the layers it lists),
    each map is averaged over its positions (global average pooling), N×channels. Chapter "transfer"."""
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"expected a batch of images (N, H, W, C), got shape {x.shape}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    pooled = set(layers) if pool is True else set(pool or [])
    if pooled - set(layers):
        raise ValueError(f"pool names layers that are not requested: {sorted(pooled - set(layers))}")
    parts: dict[str, list[np.ndarray]] = {name: [] for name in layers}
    for start in range(0, len(x), batch_size):
        maps = feature_maps(model, x[start : start + batch_size], layers)
        for name in layers:
            parts[name].append(maps[name].mean(axis=(1, 2)) if name in pooled else maps[name])
    return {name: np.concatenate(chunks) for name, chunks in parts.items()}


@dataclass(frozen=True)
class LinearClassifier:
    """A softmax (multinomial logistic) classifier on standardised features: `weights` (features×classes)."""

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: np.ndarray

    @property
    def params(self) -> int:
        """Its trainable parameters: the weights and the biases."""
        return int(self.weights.size + self.bias.size)

    def predict(self, features: np.ndarray) -> np.ndarray:
        """The most probable class of each row of `features`."""
        features = np.asarray(features, np.float64)
        if features.ndim != 2 or features.shape[1] != self.weights.shape[0]:
            raise ValueError(f"expected features of shape (N, {self.weights.shape[0]}), got {features.shape}")
        return (((features - self.mean) / self.scale) @ self.weights + self.bias).argmax(axis=1)

    def accuracy(self, features: np.ndarray, labels: np.ndarray) -> float:
        """The share of rows whose predicted class is `labels`'."""
        return float((self.predict(features) == np.asarray(labels)).mean())


def train_linear(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    classes: int | None = None,
    l2: float = 1e-2,
    seed: int = 0,
) -> LinearClassifier:
    """Fit a softmax classifier to `features` (N×D) and integer `labels`: the minimum of the mean cross-entropy
    plus `l2`·‖W‖²/2 over features standardised with their training mean and standard deviation, found by SciPy's
    L-BFGS in float64 to a small gradient. With `l2` > 0 the loss is strictly convex in the weights, so every start
    reaches the same weights; the biases are not penalised and are unique only up to a shift common to all classes,
    which changes no prediction and, as its gradient is always zero, stays at the start's 0. So every start reaches
    the same classifier, and `seed`, which draws the start, only shows that. Chapter "transfer"."""
    x = np.asarray(features, np.float64)
    y = np.asarray(labels)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"expected features of shape (N, D) with N ≥ 1, got {x.shape}")
    if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"expected {len(x)} integer labels, got shape {y.shape} of {y.dtype}")
    classes = int(y.max()) + 1 if classes is None else classes
    if y.min() < 0 or y.max() >= classes:
        raise ValueError(f"labels must lie in 0…{classes - 1}, got {y.min()}…{y.max()}")
    if l2 <= 0:
        raise ValueError(f"l2 must be positive (it makes the minimum unique), got {l2}")
    mean, std = x.mean(axis=0), x.std(axis=0)
    scale = np.where(std > 0, std, 1)  # a constant feature stays 0, the others get standard deviation 1
    z = (x - mean) / scale
    onehot = np.eye(classes)[y]
    # With more features than images (raw pixels: 27,648 per image) the minimum lies in the span of the training
    # rows, W = zᵀA: solved for A (N×classes), through the N×N products z·zᵀ, it is the same problem made small.
    span = x.shape[1] > len(x)
    m = z @ z.T if span else z
    shape = (m.shape[1] + 1, classes)  # A (or W), then the biases as the last row

    def loss_and_gradient(flat: np.ndarray) -> tuple[float, np.ndarray]:
        a, b = flat.reshape(shape)[:-1], flat.reshape(shape)[-1]
        logits = m @ a + b
        logits -= logits.max(axis=1, keepdims=True)
        log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        error = (np.exp(log_p) - onehot) / len(z)
        shrink = m @ a if span else a  # ‖W‖² = Aᵀ(z·zᵀ)A in the span
        loss = -(onehot * log_p).sum() / len(z) + l2 * (a * shrink).sum() / 2
        return float(loss), np.vstack([m.T @ error + l2 * shrink, error.sum(axis=0)]).ravel()

    start = np.random.default_rng(seed).normal(0, 0.01, shape)
    start[-1] = 0
    found = scipy.optimize.minimize(
        loss_and_gradient,
        start.ravel(),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": 10_000, "ftol": 0, "gtol": 1e-9},
    )
    a, bias = found.x.reshape(shape)[:-1], found.x.reshape(shape)[-1]
    w = z.T @ a if span else a
    logits = z @ w + bias
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    error = p / p.sum(axis=1, keepdims=True) - onehot
    gradient = max(np.abs(z.T @ error / len(z) + l2 * w).max(), np.abs(error.sum(axis=0) / len(z)).max())
    if gradient > 1e-4:
        raise RuntimeError(f"train_linear did not converge: largest gradient {gradient:.1e} ({found.message})")
    return LinearClassifier(mean, scale, w, bias)


def count_trainable(model: keras.Model) -> int:
    """The number of trainable parameters of `model` (chapter "transfer")."""
    return int(sum(np.prod(v.shape) for v in model.trainable_weights))


def clone_top(model: keras.Model, first: str) -> keras.Model:
    """A new model made of `model`'s layers from `first` on (a chain, as VGG's base is), each a fresh copy with
    the same configuration and weights, taking the output of the layer before `first` as its input: training
    it leaves `model` untouched. Chapter "transfer"."""
    names = [layer.name for layer in model.layers]
    if first not in names:
        raise ValueError(f"{model.name!r} has no layer {first!r}; its layers are {names}")
    start = names.index(first)
    if start == 0:
        raise ValueError(f"{first!r} is the input layer: there is nothing before it to take as input")
    inputs = keras.Input(shape=model.layers[start - 1].output.shape[1:], name=f"{model.layers[start - 1].name}_in")
    x = inputs
    copies = []
    for layer in model.layers[start:]:
        copy = layer.__class__.from_config(layer.get_config())
        x = copy(x)
        copies.append((copy, layer))
    top = keras.Model(inputs, x, name=f"{model.name}_from_{first}")
    for copy, layer in copies:
        copy.set_weights(layer.get_weights())
    return top


_RESTARTABLE = (keras.optimizers.Adam, keras.optimizers.SGD)  # whose state `restart` can set back to zero


def restart(model: keras.Model, weights: list[np.ndarray] | None = None) -> None:
    """Start a compiled `model`'s training afresh without compiling it again: its weights set to `weights` (if
    given), its optimizer's step count and moments set to zero, its learning rate kept. The next `fit` then trains
    as on a newly compiled model but reuses the training step the model has already traced. In this TensorFlow each
    traced step keeps memory even after its model is freed: per run of VGG16's block 5 under a dense head, about
    100 MiB for a new network, 70 MiB for the same network compiled again, none with `restart`
    (benchmarks/retrace_memory.py). It restarts only Adam and SGD, whose state starts at zero, and only with
    `weights` that keep every `Normalization` layer's adapted statistics, which are part of the traced step; it
    raises otherwise. Chapter "transfer" (and `train_vgg`, chapter "training", which restarts the networks it
    has compiled)."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        raise ValueError(f"model {model.name!r} is not compiled: compile it once, then restart it for each run")
    if not isinstance(optimizer, _RESTARTABLE):
        raise ValueError(
            f"restart sets an optimizer's state to zero, which is a fresh start for Adam and SGD only, not for "
            f"{type(optimizer).__name__}: compile the model anew"
        )
    if weights is not None:
        if len(weights) != len(model.weights):
            raise ValueError(f"model {model.name!r} has {len(model.weights)} weights, got {len(weights)}")
        adapted = {
            id(v) for layer in _layers(model) if isinstance(layer, keras.layers.Normalization) for v in layer.weights
        }
        for variable, value in zip(model.weights, weights, strict=True):
            if id(variable) in adapted and not np.array_equal(variable.numpy(), value):
                raise ValueError(
                    f"restart cannot change {variable.path!r}: a Normalization layer's adapted statistics are fixed "
                    "in the traced training step; adapt it on the same data, or build and compile a new model"
                )
        model.set_weights(weights)
    if not optimizer.built:
        optimizer.build(model.trainable_variables)
    for variable in optimizer.variables:
        if variable.name != "learning_rate":  # a learning rate set by a schedule is no variable
            variable.assign(np.zeros(variable.shape, variable.dtype))


def _layers(model: keras.Model) -> list[keras.layers.Layer]:
    """Every layer of `model`, those of the models inside it too."""
    found = []
    for layer in model.layers:
        found.append(layer)
        if isinstance(layer, keras.Model):
            found.extend(_layers(layer))
    return found
