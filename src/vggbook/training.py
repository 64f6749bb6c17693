"""Offline data and training from scratch: chapter "training".

`shapes_dataset` draws a labelled image set with OpenCV (no download), `standardize` scales images to
zero mean and unit variance per channel, `train_vgg` builds, compiles and fits a VGG16-shaped network
on them (optionally narrow, with the paper's weight decay and dropout, under a
`tf.distribute.Strategy`), and `block_activation_std` measures how the activation scale changes from
block to block.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import cv2
import keras
import numpy as np
import tensorflow as tf

from vggbook.architecture import build_vgg
from vggbook.features import _as_batch
from vggbook.images import preprocess
from vggbook.transfer import _RESTARTABLE, restart

__all__ = [
    "PREPROCESSING",
    "SHAPES",
    "ShapesData",
    "block_activation_std",
    "shapes_dataset",
    "standardize",
    "train_vgg",
]

SHAPES = ("circle", "square", "triangle", "star", "cross")
PREPROCESSING = ("caffe", "standardize")  # what `train_vgg` does to the images before the first layer
_SUPERSAMPLE = 4  # shapes are drawn at 4× the size and shrunk with area averaging: smooth edges


@dataclass(frozen=True)
class ShapesData:
    """Train and validation images (RGB uint8, N×size×size×3), integer labels into `class_names`,
    and each image's shape mask (bool, N×size×size, True on the shape)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    class_names: tuple[str, ...]
    mask_train: np.ndarray
    mask_val: np.ndarray

    @property
    def train(self) -> tuple[np.ndarray, np.ndarray]:
        """(images, labels) of the training split, as `train_vgg` takes them."""
        return self.x_train, self.y_train

    @property
    def validation(self) -> tuple[np.ndarray, np.ndarray]:
        """(images, labels) of the validation split, as `train_vgg` takes them."""
        return self.x_val, self.y_val


def _outline(name: str, radius: float, angle: float) -> np.ndarray:
    """Vertices (k, 2) of a polygonal shape around the origin, rotated by `angle` radians."""
    if name == "square":
        t = angle + np.pi / 4 + np.arange(4) * np.pi / 2
        r = np.full(4, radius)
    elif name == "triangle":
        t = angle + np.arange(3) * 2 * np.pi / 3
        r = np.full(3, radius * 1.15)
    elif name == "star":
        t = angle + np.arange(10) * np.pi / 5
        r = np.where(np.arange(10) % 2 == 0, radius * 1.1, radius * 0.45)
    elif name == "cross":
        # a plus sign of arm half-width radius/3: 12 corners
        a, b = radius, radius / 3
        xy = np.array(
            [(b, a), (b, b), (a, b), (a, -b), (b, -b), (b, -a), (-b, -a), (-b, -b), (-a, -b), (-a, b), (-b, b), (-b, a)]
        )
        c, s = math.cos(angle), math.sin(angle)
        return xy @ np.array([[c, s], [-s, c]])
    else:
        raise ValueError(f"unknown shape {name!r}; choose from {SHAPES}")
    return np.stack([r * np.cos(t), r * np.sin(t)], axis=1)


def _draw(name: str, size: int, radii: tuple[float, float], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One RGB uint8 image — a noisy gradient background and one filled shape of random colour,
    size, position and rotation — and the shape's mask (bool, True on the shape)."""
    big = size * _SUPERSAMPLE
    # background: a random colour plus a linear gradient in a random direction
    base = rng.uniform(0, 255, 3)
    direction = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(direction) * np.linspace(-1, 1, big)[None, :] + np.sin(direction) * np.linspace(-1, 1, big)[:, None]
    background = base + rng.uniform(0, 60) * ramp[:, :, None] * rng.choice([-1, 1], 3)
    # the shape: a colour far enough from the background's mean to be seen
    while True:
        colour = rng.uniform(0, 255, 3)
        if np.linalg.norm(colour - base) > 100:
            break
    radius = rng.uniform(*radii) * big
    margin = radius * 1.1
    cx, cy = rng.uniform(margin, big - margin, 2)
    alpha = np.zeros((big, big), dtype=np.uint8)  # the shape drawn in white on black, anti-aliased
    if name == "circle":
        cv2.circle(alpha, (round(cx), round(cy)), round(radius), 255, thickness=-1, lineType=cv2.LINE_AA)
    else:
        points = _outline(name, radius, rng.uniform(0, 2 * np.pi)) + (cx, cy)
        cv2.fillPoly(alpha, [np.round(points).astype(np.int32)], 255, lineType=cv2.LINE_AA)
    alpha = cv2.resize(alpha, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)[:, :, None] / 255
    background = cv2.resize(background.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)
    image = (1 - alpha) * background + alpha * colour + rng.normal(0, rng.uniform(2, 20), (size, size, 3))
    return np.clip(image, 0, 255).round().astype(np.uint8), alpha[:, :, 0] >= 0.5


def _draw_many(
    n: int, size: int, classes: tuple[str, ...], radius: tuple[float, float], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    labels = rng.permutation(np.arange(n) % len(classes)).astype(np.int64)  # balanced, shuffled
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    masks = np.empty((n, size, size), dtype=bool)
    for i, label in enumerate(labels):
        images[i], masks[i] = _draw(classes[label], size, radius, rng)
    return images, labels, masks


def shapes_dataset(
    n_train: int = 3000,
    n_val: int = 600,
    *,
    size: int = 32,
    classes: tuple[str, ...] = SHAPES,
    radius: tuple[float, float] = (0.22, 0.40),
    seed: int = 0,
) -> ShapesData:
    """A labelled image set drawn with OpenCV, offline and the same for the same seed: one filled
    shape per image (circle, square, triangle, star, cross) of random colour, size, position and
    rotation on a noisy gradient background, with the shape's mask. Train and validation come
    from independent random streams, each balanced over the classes. Chapter "training"."""
    classes = tuple(classes)
    unknown = [c for c in classes if c not in SHAPES]
    if unknown or not classes:
        raise ValueError(f"classes must be a non-empty subset of {SHAPES}, got {classes}")
    if n_train < 1 or n_val < 0:
        raise ValueError(f"need n_train ≥ 1 and n_val ≥ 0, got {n_train} and {n_val}")
    if size < 8:
        raise ValueError(f"size must be at least 8 pixels, got {size}")
    if not 0 < radius[0] <= radius[1] <= 0.4:
        raise ValueError(
            f"radius must be a range (low, high) with 0 < low ≤ high ≤ 0.4 (of the image's side), got {radius}"
        )
    x_train, y_train, m_train = _draw_many(n_train, size, classes, radius, np.random.default_rng([seed, 0]))
    x_val, y_val, m_val = _draw_many(n_val, size, classes, radius, np.random.default_rng([seed, 1]))
    return ShapesData(x_train, y_train, x_val, y_val, classes, m_train, m_val)


def standardize(images: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """RGB image(s) (…, H, W, 3) as float32 with zero mean and unit variance per colour channel, the
    mean and standard deviation taken over every pixel of `reference` (the training images, so that
    validation images are scaled the same way). Unlike `vggbook.preprocess` (VGG's caffe scheme: BGR,
    ImageNet means subtracted, no scaling) the result has a standard deviation of about 1, whatever
    the images. Chapter "training"."""
    images, reference = np.asarray(images), np.asarray(reference)
    if images.shape[-1:] != (3,) or reference.ndim < 2 or reference.shape[-1] != 3:
        raise ValueError(
            f"standardize needs RGB images (…, H, W, 3) and reference images, got {images.shape} and {reference.shape}"
        )
    if reference.size == 0:
        raise ValueError("standardize needs at least one reference image to take the mean and spread from")
    if reference.dtype not in (np.uint8, np.float32, np.float64):
        reference = reference.astype(np.float32)
    # OpenCV accumulates in double precision without a float copy of every pixel
    mean, std = (v.ravel() for v in cv2.meanStdDev(np.ascontiguousarray(reference.reshape(-1, 1, 3))))
    if np.any(std <= 1e-6 * (1 + np.abs(mean))):  # constant, up to rounding
        raise ValueError(
            f"the reference images are constant in a colour channel (std {std.tolist()}): nothing to scale by"
        )
    scaled = np.subtract(images, mean.astype(np.float32), dtype=np.float32)
    scaled /= std.astype(np.float32)
    return scaled


def block_activation_std(model: keras.Model, x: np.ndarray, *, training: bool = False) -> dict[str, float]:
    """Standard deviation of each block's output (after its max-pool) for the batch `x`:
    {"block1": …, …, "block5": …}, from one forward pass. `training=True` makes batch-norm layers
    use the batch's own statistics, as they do in a training step (at initialisation their moving
    averages are 0 and 1, so in inference mode they pass the input through unchanged); the moving
    averages are left as they were. Chapter "training"."""
    pools = [layer.name for layer in model.layers if layer.name.startswith("block") and layer.name.endswith("_pool")]
    if not pools:
        raise ValueError(f"model {model.name!r} has no blockN_pool layers")
    probe = keras.Model(model.input, [model.get_layer(name).output for name in pools])
    saved = [v.numpy() for v in model.non_trainable_variables]
    outputs = probe(_as_batch(model, x), training=training)
    for variable, value in zip(model.non_trainable_variables, saved, strict=True):
        variable.assign(value)
    return {
        name.removesuffix("_pool"): float(np.std(keras.ops.convert_to_numpy(v)))
        for name, v in zip(pools, outputs, strict=True)
    }


def _check_split(x: np.ndarray, y: np.ndarray, classes: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, H, W, 3) and integer labels (N,) in [0, classes), or a ValueError saying what is wrong."""
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"{what} images must be an RGB batch (N, H, W, 3), got shape {x.shape}")
    if len(x) == 0:
        raise ValueError(f"{what} set is empty (no images)")
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{what} labels must be a 1-D array of integer class indices, got {y.dtype} {y.shape}")
    if len(y) != len(x):
        raise ValueError(f"{what} set has {len(x)} images but {len(y)} labels")
    if y.min() < 0 or y.max() >= classes:
        raise ValueError(
            f"{what} labels run from {y.min()} to {y.max()}, but the model's head has classes={classes} "
            f"outputs (labels must be 0 … {classes - 1})"
        )
    return x, y


_KEEP_TRAINERS = 4  # compiled networks `train_vgg` keeps to restart, the most recently used
_KEEP_PARAMS = 20_000_000  # and only small ones: a kept VGG16 (138 M) would hold its weights and Adam's twice
_TRAINERS: dict[str, keras.Model] = {}


class _EpochTimer(keras.callbacks.Callback):
    """Wall-clock seconds of each epoch (validation included)."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.seconds.append(time.perf_counter() - self._start)


def train_vgg(
    train: tuple[np.ndarray, np.ndarray],
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    *,
    classes: int,
    epochs: int = 5,
    batch_size: int = 32,
    optimizer: str | dict = "adam",
    learning_rate: float = 1e-3,
    preprocessing: str = "caffe",
    weight_decay: float = 0.0,
    dropout: float = 0.0,
    strategy: tf.distribute.Strategy | None = None,
    seed: int = 0,
    verbose: int = 0,
    **build_kwargs,
) -> tuple[keras.Model, dict[str, list[float]]]:
    """Build a VGG16-shaped network (`build_vgg("D", include_top=True, …)`, `**build_kwargs` such as
    width, batch_norm, kernel_initializer), compile and fit it on RGB images (0–255) and integer
    labels 0 … classes-1. Returns (model, history): Keras' per-epoch loss and accuracy (val_… too)
    and "epoch_seconds".

    `preprocessing` is what the images go through before the first layer: "caffe" (`vggbook.preprocess`,
    as VGG's ImageNet weights expect: mean subtracted, not scaled) or "standardize"
    (`vggbook.standardize(images, training images)`: zero mean, unit variance per channel). Feed the
    trained model images prepared the same way. `optimizer` is a Keras name or config dict
    ({"class_name": "sgd", "config": {"momentum": 0.9}}). The paper's regularisers:
    `weight_decay` adds weight_decay · w to the gradient of every convolution and dense kernel (an L2
    penalty weight_decay/2 · ‖w‖² in the loss; the paper used 5e-4). Only the kernels decay: Caffe, which
    the paper's implementation was derived from, decays the biases too by default. `dropout` puts
    Dropout of that rate after fc1 and fc2 (the paper: 0.5).

    With a `tf.distribute.Strategy` the model is built and compiled inside its scope and each batch
    of `batch_size` is split over the replicas; batch-norm layers then use the whole batch's
    statistics (`synchronized`), so every replica keeps the same moving averages. Bad input or
    settings fail before any model is built. Seeded: the same call gives the same model.

    Tracing a new network's training step costs seconds, so the last networks it compiled (at most four, of at
    most 20 M parameters each: `_KEEP_TRAINERS`, `_KEEP_PARAMS`) are kept: a call whose network differs only in its
    starting weights (initialiser, seed) and whose optimizer differs only in its learning rate (the same input
    shape, head, architecture, weight decay, optimizer class and settings, dtype policy) trains one of them,
    restarted (`restart`) from this call's starting weights, and copies the trained weights and optimizer state
    into the model it returns: the same, to the last bit, as a newly compiled network trained from this seed.
    That model was not itself fitted: use the returned history (it has no `model.history`). Calls with dropout,
    under a strategy (passed or entered), or with an optimizer other than Adam or SGD compile their own.
    Chapter "training".
    """
    if classes < 1:
        raise ValueError(f"classes must be at least 1, got {classes}")
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be positive, got {epochs} and {batch_size}")
    if not (math.isfinite(learning_rate) and learning_rate > 0):
        raise ValueError(f"learning_rate must be a positive number, got {learning_rate}")
    if preprocessing not in PREPROCESSING:
        raise ValueError(f"preprocessing must be one of {PREPROCESSING}, got {preprocessing!r}")
    if not (math.isfinite(weight_decay) and weight_decay >= 0):
        raise ValueError(f"weight_decay must be a number ≥ 0 (the paper: 5e-4), got {weight_decay}")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout must be a rate in [0, 1) (the paper: 0.5), got {dropout}")
    x, y = _check_split(*train, classes, "training")
    val = None
    if validation is not None:
        xv, yv = _check_split(*validation, classes, "validation")
        if xv.shape[1:] != x.shape[1:]:
            raise ValueError(f"validation images are {xv.shape[1:]}, training images {x.shape[1:]}")
        val = (xv, yv)

    def prepare(images: np.ndarray) -> np.ndarray:
        return preprocess(images) if preprocessing == "caffe" else standardize(images, x)

    def network() -> keras.Model:
        built = build_vgg(
            "D",
            include_top=True,
            input_shape=x.shape[1:],
            classes=classes,
            dropout=dropout,
            weights="random",
            seed=seed,
            **build_kwargs,
        )
        for layer in built.layers:
            if weight_decay > 0 and isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
                # the gradient of weight_decay/2 · ‖w‖² is weight_decay · w
                layer.kernel.regularizer = keras.regularizers.L2(weight_decay / 2)
            if strategy.num_replicas_in_sync > 1 and isinstance(layer, keras.layers.BatchNormalization):
                layer.synchronized = True  # read at call time: statistics of the global batch
        return built

    spec = {"class_name": optimizer, "config": {}} if isinstance(optimizer, str) else dict(optimizer)
    config = {**spec.get("config", {}), "learning_rate": learning_rate}

    def compiled(net: keras.Model) -> keras.Model:
        opt = keras.optimizers.get({**spec, "config": config})
        net.compile(optimizer=opt, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return net

    keras.utils.set_random_seed(seed)
    own_strategy = strategy is not None or tf.distribute.has_strategy()
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        model = compiled(network())  # this call's network, its starting weights drawn from `seed`
    # The same architecture and optimizer traced before: restart that network from this one's weights (exact,
    # tests/test_training.py) instead of tracing a new training step (about 3 s on the book's CPU). Dropout's
    # random state and a strategy's replicas are not restarted: those calls always compile their own.
    architecture = sorted((k, v) for k, v in build_kwargs.items() if k != "kernel_initializer")  # not the start
    settings = sorted((k, v) for k, v in config.items() if k != "learning_rate")  # a variable of the step
    policy = keras.config.dtype_policy().name
    key = repr((x.shape[1:], classes, architecture, weight_decay, spec.get("class_name"), settings, policy))
    kept = not own_strategy and dropout == 0 and isinstance(model.optimizer, _RESTARTABLE)
    key = key if kept and model.count_params() <= _KEEP_PARAMS else None
    trainer = model
    if key:  # a network of the cache's own, never one a caller holds
        trainer = _TRAINERS.pop(key, None)
        if trainer is None:
            trainer = compiled(network())
        restart(trainer, model.get_weights())
        trainer.optimizer.learning_rate = learning_rate
        _TRAINERS[key] = trainer
        while len(_TRAINERS) > _KEEP_TRAINERS:
            _TRAINERS.pop(next(iter(_TRAINERS)))  # the least recently used

    keras.utils.set_random_seed(seed)  # the batches' order: from `seed` alone, whichever network trains
    timer = _EpochTimer()
    fit = trainer.fit(
        prepare(x),
        y,
        validation_data=None if val is None else (prepare(val[0]), val[1]),
        epochs=epochs,
        batch_size=batch_size,
        shuffle=True,
        callbacks=[timer],
        verbose=verbose,
    )
    if trainer is not model:  # the trained weights and optimizer state, in a model of this call's own
        model.set_weights(trainer.get_weights())
        model.optimizer.build(model.trainable_variables)
        for mine, trained in zip(model.optimizer.variables, trainer.optimizer.variables, strict=True):
            mine.assign(trained)
    return model, {**fit.history, "epoch_seconds": timer.seconds}
