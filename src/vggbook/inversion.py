"""What a layer keeps of the photograph: the photo reconstructed from the layer's output by feature
inversion (Mahendran & Vedaldi 2015), and how much of it comes back at each spatial scale. The block
chapters show block n's reconstruction beside block n−1's (section "what the search recovers from the block's pool").

The objective is the paper's; the optimiser is ours, chosen by measurement (`benchmarks/inversion_speed.py`):
the book's time budget allows tens of steps, not the paper's hundreds, so the image is parametrised by its
Fourier coefficients scaled by 1/f (the preconditioning the classifier chapter's activation maximisation uses,
`vggbook.interpret`) and moved by Adam (Kingma & Ba 2015).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import keras
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import tensorflow as tf
from IPython.display import Markdown
from matplotlib.figure import Figure

from vggbook.features import _cached, check_layer_names
from vggbook.images import deprocess, preprocess
from vggbook.plotting import PAGE_WIDTH, NumberedTable, numbered_table

__all__ = [
    "Reconstruction",
    "band_periods",
    "invert",
    "kept_per_scale",
    "plot_reconstructions",
    "image_priors",
    "near_threshold",
    "reconstruction_table",
    "SETTLED",
]

# The objective's constants. The paper's: the exponents ALPHA = 6 and BETA = 2 it uses for CNNs, and the way each
# term is normalised (feature loss by ||Φ0||², image in units of a typical pixel range B, α term by 1/(HW·B^α),
# TV term by 1/(HW·(aB)^β)). Ours, with reasons in `invert`'s docstring: B, a, the two weights λ.
ALPHA = 6
BETA = 2
PIXEL_RANGE = 128.0  # B: a caffe-preprocessed pixel lies within about ±128 of zero (0–255 minus a mean of 104–124)
TV_FRACTION = 0.1  # a: typical neighbouring-pixel difference as a fraction of B (aB = 12.8 grey levels)
ALPHA_WEIGHT = 1e-3  # λα
TV_WEIGHT = 1e-2  # λV

# The optimiser's settings (ours, measured in benchmarks/inversion_speed.py).
LEARNING_RATE = 0.2  # Adam's step, in units of the Fourier coefficients (see _Parametrisation)
DECAY = 1.0  # the coefficients are scaled by 1/f^DECAY, f in cycles per image (at least 1)
START = 0.05  # the starting image: mean colour plus seeded 1/f noise of about START·B grey levels' std
ADAM = (0.9, 0.999, 1e-8)  # Adam's β1, β2 and ε: Kingma & Ba's defaults
# Steps (forward-and-gradient evaluations), the same at every depth; why 15, from benchmarks/inversion_speed.py,
# in `invert`'s docstring.
STEPS = 15
LATE_STEPS = 3  # `Reconstruction.late_drop`: how much the error still fell over the search's last steps
SETTLED = 0.1  # `Reconstruction.settled`: a search whose error fell by at most this much over those steps

SCALES = 5  # band-pass levels of the Laplacian pyramid in `kept_per_scale`; a low-pass rest comes after them


def image_priors(x: np.ndarray) -> pd.DataFrame:
    """The paper's two image priors of a preprocessed batch `x` (N, H, W, 3), normalised as `invert` weighs
    them, one row per image: "alpha" = Σ|x|^α / (HW·B^α) (α = 6, summed over pixels and colours) and "tv" =
    Σ_ij (Σ_colours (x_i,j+1 − x_ij)² + (x_i+1,j − x_ij)²)^(β/2) / (HW·(aB)^β) (β = 2; over the (H−1)(W−1)
    pixels with both neighbours). The same TensorFlow code as in `invert`'s loop. Block chapters."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"expected a preprocessed batch (N, H, W, 3), got shape {x.shape}; use vggbook.preprocess")
    alpha, tv = _priors(tf.constant(x))
    return pd.DataFrame({"alpha": alpha.numpy(), "tv": tv.numpy()})


def _priors(x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(N,) α-norm and (N,) total-variation terms of a batch in pixel units, each normalised (see `image_priors`)."""
    pixels = tf.cast(tf.shape(x)[1] * tf.shape(x)[2], tf.float32)
    alpha = tf.reduce_sum(tf.abs(x / PIXEL_RANGE) ** ALPHA, axis=(1, 2, 3)) / pixels
    right = x[:, :-1, 1:] - x[:, :-1, :-1]
    down = x[:, 1:, :-1] - x[:, :-1, :-1]
    squared = tf.reduce_sum(tf.square(right) + tf.square(down), axis=-1)  # (N, H−1, W−1)
    tv = tf.reduce_sum(squared ** (BETA / 2), axis=(1, 2)) / (pixels * (TV_FRACTION * PIXEL_RANGE) ** BETA)
    return alpha, tv


def kept_per_scale(photo: np.ndarray, image: np.ndarray, scales: int = SCALES) -> pd.Series:
    """How much of `photo` `image` keeps at each spatial scale: the correlation (Pearson, over pixels and
    colours, each colour centred) of the two images' bands of a Laplacian pyramid (OpenCV's pyrDown/pyrUp):
    1 = the band is the photo's up to contrast, 0 = unrelated. The index is the band's scale in photo pixels:
    1 is the finest detail (the band of the full-size level), then 2, 4, … up to 2^(scales−1); the last entry,
    2^scales, is the low-pass rest (7×7 for a 224×224 photo). NaN where either band is flat. Block chapters."""
    a, b = (np.asarray(im, dtype=np.float32) for im in (photo, image))
    if a.shape != b.shape or a.ndim != 3:
        raise ValueError(f"photo and image must be two (H, W, colours) arrays of one shape, got {a.shape}, {b.shape}")
    if min(a.shape[:2]) < 2**scales:
        raise ValueError(f"{scales} scales need at least {2**scales}×{2**scales} pixels, got {a.shape[:2]}")
    values = []
    for _ in range(scales):
        down_a, down_b = cv2.pyrDown(a), cv2.pyrDown(b)
        size = (a.shape[1], a.shape[0])
        values.append(_correlation(a - cv2.pyrUp(down_a, dstsize=size), b - cv2.pyrUp(down_b, dstsize=size)))
        a, b = down_a, down_b
    values.append(_correlation(a, b))
    return pd.Series(values, index=pd.Index([2**k for k in range(scales + 1)], name="scale (px)"), name="kept")


def _bands(image: np.ndarray, scales: int) -> list[np.ndarray]:
    """The Laplacian pyramid's bands of one (H, W) image, finest first, then the low-pass rest."""
    bands, a = [], image
    for _ in range(scales):
        down = cv2.pyrDown(a)
        bands.append(a - cv2.pyrUp(down, dstsize=(a.shape[1], a.shape[0])))
        a = down
    return [*bands, a]


def band_periods(size: int = 224, scales: int = SCALES) -> pd.DataFrame:
    """Which stripes each band of `kept_per_scale`'s Laplacian pyramid holds, measured: gratings of every
    period from 2 px (the finest a pixel grid can show) to `size` px are split into the bands, and each band
    is given the periods whose energy (per photo pixel) it holds more of than any other band. Columns
    "from (px)" and "to (px)" (inclusive, whole pixels), index the band's scale as in `kept_per_scale`. Block
    chapters (block 1)."""
    periods = np.unique(np.round(np.geomspace(2, size, 400)).astype(int))
    x = np.arange(size, dtype=np.float32)
    owner = []
    for period in periods:
        image = np.tile(np.sin(2 * np.pi * x / period), (size, 1)).astype(np.float32)
        energy = [float(np.sum(b.astype(np.float64) ** 2) * 4**k) for k, b in enumerate(_bands(image, scales))]
        owner.append(int(np.argmax(energy)))  # the rest is (size / 2^scales)² pixels: energy per photo pixel
    # near a band's edge a period that does not divide the image can swing between two bands: a period belongs to
    # the finest band that no longer period holds, so that the bands are ranges one after the other
    owner = np.minimum.accumulate(np.array(owner)[::-1])[::-1]
    index = pd.Index([2**k for k in range(scales + 1)], name="scale (px)")
    rows = [
        (int(periods[owner == k].min()), int(periods[owner == k].max())) if np.any(owner == k) else (0, 0)
        for k in range(scales + 1)
    ]
    return pd.DataFrame(rows, index=index, columns=["from (px)", "to (px)"])


def near_threshold(value: float, threshold: float) -> str:
    """`value` with two decimals, or more where two would round it onto `threshold` (0.496 is "0.496", not
    "0.50", beside a rule "at least 0.5"), so that a comparison with the threshold reads true; never "-0.00".
    Block chapters (correlations against the recovered rule, selectivity against 0.3)."""
    value, places = float(value), 2
    while places < 6 and value != threshold and round(value, places) == round(threshold, places):
        places += 1
    return f"{round(value, places) + 0.0:.{places}f}"


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson's correlation of two (h, w, colours) arrays, each colour centred on its own mean: a shared colour
    cast (the start is the mean ImageNet colour, which most photos resemble) is not structure."""
    a, b = (im - im.mean(axis=(0, 1)) for im in (a, b))
    a, b = a.ravel(), b.ravel()
    norm = np.sqrt((a @ a) * (b @ b))
    return float(a @ b / norm) if norm > 0 else float("nan")


@dataclass(eq=False)
class Reconstruction:
    """One layer's reconstruction of the photo, made by `invert`: the image (RGB uint8), the layer, the relative
    feature error ||Φ(x) − Φ0||² / ||Φ0||² of the image each step evaluated (`errors`: the first is the start's,
    the last the returned image's), the steps taken, the seconds of the `invert` call that made it (shared by
    the reconstructions made together), and the photo. Block chapters."""

    image: np.ndarray
    layer: str
    errors: np.ndarray
    steps: int
    seconds: float
    photo: np.ndarray

    @property
    def feature_error(self) -> float:
        """The relative feature error of the returned image: 0 = the layer's output is the photo's."""
        return float(self.errors[-1])

    @property
    def start_error(self) -> float:
        """The relative feature error of the starting image (mean colour plus faint noise)."""
        return float(self.errors[0])

    def late_fall(self, late_steps: int = LATE_STEPS) -> float:
        """How much the feature error still fell over the last `late_steps` steps, as a fraction of where it
        stood then: near 0 = settled, large = the optimiser was still converging when it stopped."""
        if late_steps < 1:
            raise ValueError(f"late_steps must be at least 1, got {late_steps}")
        if len(self.errors) < 2:
            return 0.0
        before = float(self.errors[-1 - min(late_steps, len(self.errors) - 1)])
        return 1 - self.feature_error / before if before > 0 else 0.0

    @property
    def late_drop(self) -> float:
        """`late_fall` over the book's LATE_STEPS last steps."""
        return self.late_fall()

    @property
    def settled(self) -> bool:
        """Whether the search had settled: its error fell by at most SETTLED of its value over its last
        LATE_STEPS steps (`late_drop`). Not settled: what it recovered is a lower bound on what the layer keeps."""
        return self.late_drop <= SETTLED

    @property
    def late_steps(self) -> int:
        """The steps `late_drop` looks back over (fewer when the search took fewer)."""
        return min(LATE_STEPS, len(self.errors) - 1)

    @property
    def kept(self) -> pd.Series:
        """The correlation of the image with the photo at each spatial scale (`kept_per_scale`)."""
        return kept_per_scale(self.photo, self.image).rename(self.layer)

    def plot(self) -> Figure:
        """The photo beside the reconstruction, and what it keeps at each scale (`plot_reconstructions`)."""
        return plot_reconstructions([self])

    @property
    def summary(self) -> Markdown:
        """A sentence of the reconstruction's numbers, for a cell whose code the site hides."""
        kept = self.kept
        coarse, fine = kept.index[-1], kept.index[1]
        return Markdown(
            f"From `{self.layer}` the optimiser brought the relative feature error from {self.start_error:.1%} "
            f"to **{self.feature_error:.1%}** in {self.steps} steps; over the last {self.late_steps} of them it "
            f"fell by {self.late_drop:.0%} of its value{'' if self.settled else ' (still falling)'}. "
            f"The reconstruction's "
            f"correlation with the photo is **{kept[coarse]:.2f}** at the coarsest scale ({coarse} px) and "
            f"**{kept[fine]:.2f}** at {fine} px."
        )


class _Parametrisation:
    """The image as Fourier coefficients z (2, N, 3, H, W//2 + 1: real and imaginary parts) scaled by 1/f^decay:
    x = B · irfft2(z · w) · sqrt(HW/2), w = 1/f^decay divided by its RMS, so that white z of unit variance gives
    pixels of about B·1 std. Adam moves every coefficient by about the same amount per step, so coarse
    patterns move first: a preconditioner; the objective, on x, is unchanged."""

    def __init__(self, height: int, width: int, decay: float):
        fy = np.fft.fftfreq(height)[:, None] * height
        fx = np.fft.rfftfreq(width)[None, :] * width
        weights = 1.0 / np.maximum(np.hypot(fx, fy), 1.0) ** decay
        weights /= np.sqrt(np.mean(weights**2))
        self.height, self.width = height, width
        self.weights = tf.constant(weights.astype(np.complex64))
        self.gain = float(PIXEL_RANGE * np.sqrt(height * width / 2))

    def shape(self, n: int) -> tuple[int, ...]:
        return (2, n, 3, self.height, self.width // 2 + 1)

    def image(self, z: tf.Tensor) -> tf.Tensor:
        """Coefficients → preprocessed images (N, H, W, 3) in pixel units."""
        spectrum = tf.complex(z[0], z[1]) * self.weights
        planes = tf.signal.irfft2d(spectrum, fft_length=[self.height, self.width]) * self.gain
        return tf.transpose(planes, (0, 2, 3, 1))


def _segments(model: keras.Model, layers: list[str]) -> list[keras.Model] | None:
    """For layers in order of depth: input → layers[0], layers[0] → layers[1], …, sharing the model's weights;
    None where a later layer sees the input other than through the earlier one (a model that is not a chain)."""
    outputs = [model.get_layer(name).output for name in layers]
    try:
        return [keras.Model(a, b) for a, b in zip([model.inputs[0], *outputs[:-1]], outputs, strict=True)]
    except ValueError:
        return None


def _feature_errors(model: keras.Model, layers: list[str]) -> tuple[Callable, Callable]:
    """(targets(x0) → each layer's output on one image, errors(x, targets) → (k,) relative errors): image i of
    the batch x (k images) is compared at layers[i], layers sorted by depth. For a chain, image i stops at its
    own layer: images 0…k−1 go through the first segment, images 1…k−1 on through the second, and so on. For
    any other model one view returns every layer's output for the whole batch."""
    segments = _segments(model, layers)
    if segments is None:
        view = keras.Model(model.inputs[0], [model.get_layer(name).output for name in layers])

        def outputs(x: tf.Tensor) -> list[tf.Tensor]:
            maps = view(x, training=False)
            return [maps[i][i : i + 1] for i in range(len(layers))]

    else:

        def outputs(x: tf.Tensor) -> list[tf.Tensor]:
            found, h = [], x
            for i, segment in enumerate(segments):
                h = segment(h, training=False)
                found.append(h[:1])
                if i < len(segments) - 1:
                    h = h[1:]
            return found

    def targets(x0: tf.Tensor) -> list[tf.Tensor]:
        if segments is None:
            maps = view(x0, training=False)
            return [maps[i] for i in range(len(layers))]
        found, h = [], x0
        for segment in segments:
            h = segment(h, training=False)
            found.append(h)
        return found

    def errors(x: tf.Tensor, goals: list[tf.Tensor]) -> tf.Tensor:
        return tf.stack(
            [
                tf.reduce_sum(tf.square(out - goal)) / tf.reduce_sum(tf.square(goal))
                for out, goal in zip(outputs(x), goals, strict=True)
            ]
        )

    return targets, errors


def _inverter(model: keras.Model, layers: tuple[str, ...]) -> tuple[Callable, Callable, _Parametrisation]:
    """The compiled pieces of `invert` for these layers (cached per model): targets, one Adam step, the image."""
    targets, errors = _feature_errors(model, list(layers))
    height, width = model.input_shape[1:3]
    param = _Parametrisation(height, width, DECAY)
    beta1, beta2, eps = ADAM

    @tf.function(reduce_retracing=True)
    def step(z, m, v, t, goals, rate, weights):
        """Evaluate the images z stand for (errors and objective per image), and one Adam step from z."""
        with tf.GradientTape(watch_accessed_variables=False) as tape:  # the image's gradient, not the kernels'
            tape.watch(z)
            x = param.image(z)
            error = errors(x, goals)
            alpha, tv = _priors(x)
            objective = error + weights[0] * alpha + weights[1] * tv
            # Images do not interact, so one sum gives each image the gradient of its own objective.
            total = tf.reduce_sum(objective)
        grad = tape.gradient(total, z)
        m = beta1 * m + (1 - beta1) * grad
        v = beta2 * v + (1 - beta2) * tf.square(grad)
        size = rate * tf.sqrt(1 - beta2**t) / (1 - beta1**t)
        return z - size * m / (tf.sqrt(v) + eps), m, v, error

    return targets, step, param  # targets: one forward pass per call of `invert`, eager (no tracing to repeat)


def _checked_photo(model: keras.Model, photo: np.ndarray) -> np.ndarray:
    shape = tuple(model.input_shape[1:])
    if len(shape) != 3 or shape[-1] != 3 or None in shape:
        raise ValueError(f"invert needs a model that takes RGB images of a fixed size; {model.name!r} takes {shape}")
    photo = np.asarray(photo)
    if photo.dtype != np.uint8 or photo.shape != shape:
        raise ValueError(
            f"the photo must be an RGB uint8 array of shape {shape}, the model's input, got {photo.dtype} "
            f"{photo.shape}; make one with vggbook.load_image(path_or_array, size={shape[0]})"
        )
    return photo


def _checked_layers(model: keras.Model, layers: str | Sequence[str]) -> list[str]:
    names = check_layer_names(model, layers)
    if not names:
        raise ValueError("layers is empty; name at least one layer, e.g. 'block1_pool'")
    if len(set(names)) != len(names):
        raise ValueError(f"layers must be distinct, got {names}")
    return names


def invert(
    model: keras.Model,
    photo: np.ndarray,
    layers: str | Sequence[str],
    *,
    steps: int = STEPS,
    seed: int = 0,
    learning_rate: float = LEARNING_RATE,
    alpha_weight: float = ALPHA_WEIGHT,
    tv_weight: float = TV_WEIGHT,
) -> Reconstruction | list[Reconstruction]:
    """The photo reconstructed from what `layers` keep of it: feature inversion (Mahendran & Vedaldi 2015).
    Block chapters: block n's pool beside block n−1's.

    For each layer, an image x (preprocessed, pixel units) is sought that minimises the paper's objective
        ||Φ(x) − Φ0||² / ||Φ0||²  +  λα Σ|x|^α / (HW·B^α)  +  λV Σ_ij ((Δ_right x)² + (Δ_down x)²)^(β/2) / (HW·(aB)^β)
    where Φ is the layer's output and Φ0 = Φ(photo), H×W the image size, and the TV sum runs over pixels and
    colours (`image_priors`). The paper writes x in units of B and feeds Φ(σx); with σ = B that is the same objective.
    The paper's: the exponents α = 6 (bounds the image's range) and β = 2 (favours smooth images); the feature
    loss divided by ||Φ0||², so that it reads as a fraction (1 = no better than an all-zero output, 0 =
    matched); each prior divided by what it is worth on an image whose pixels are about B (α term) and whose
    neighbours differ by about aB (TV term), so that the weights λ are comparable across images and sizes.
    Ours: B = 128 (a caffe-preprocessed pixel lies within about ±128 of zero); a = 0.1 (aB = 12.8 grey levels, the
    order of the RMS neighbouring difference of the sample photos, 12–24 grey levels); λα = 1e-3 (a guard against
    pixels far outside the range, not a look: on the sample photos the weighted α term is at most 0.0006);
    λV = 1e-2 (a photo's TV term, 5.3–21.6 with these constants, then adds 0.05–0.22: enough to keep noise out
    of what the layer does not constrain, small beside a feature error that starts near 1).

    The optimiser is ours (the paper used gradient descent with momentum for hundreds of steps): Adam on the
    image's Fourier coefficients scaled by 1/f, which moves coarse patterns first (`_Parametrisation`), from the
    mean colour plus faint seeded 1/f noise. At block3_pool it reached a lower feature error and a higher
    correlation with the photo at every scale, for 10, 20 and 40 steps, than Adam on the pixels or L-BFGS-B
    (benchmarks/inversion_speed.py). `steps` forward-and-gradient evaluations; the image returned is the one the
    last step evaluated, with its error. Deterministic for a seed.

    Why STEPS = 15 at every depth (measured on VGG16 and the cat photo, seeded random weights and He-scaled
    stand-ins for ImageNet's, benchmarks/inversion_speed.py): the book's budget, a block chapter under 45 s on
    two cores, allows about 15 steps for block 5's pair, the dearest. At 15 steps no depth's search has settled
    (the error still falls by more than SETTLED over the last LATE_STEPS steps, `Reconstruction.settled`), so
    what a chapter reports is what 15 steps recovered, a lower bound; each page prints its own correlations
    and late falls rather than a range quoted here. The same steps at every depth
    make the two images of a chapter's pair equally worked, and block n−1's image in chapter n the one chapter
    n−1 shows.

    `photo`: RGB uint8 of the model's input shape. `layers`: one name → one `Reconstruction`; several → a list,
    in the order given, made in ONE loop: image i is a batch row that stops at its own layer (for a chain like
    VGG, so block n−1's reconstruction does not pay for block n), and since the images do not interact and Adam
    acts on each number alone, each starts where it would alone and follows the same path up to float rounding
    of batched convolutions (which Adam's per-number step can amplify to a few grey levels).
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"invert needs a Keras model, got {type(model).__name__}")
    photo = _checked_photo(model, photo)
    names = _checked_layers(model, layers)
    depth = {layer.name: i for i, layer in enumerate(model.layers)}
    order = sorted(names, key=depth.__getitem__)
    if not isinstance(steps, int | np.integer) or steps < 1:
        raise ValueError(f"steps must be a whole number of at least 1, got {steps!r}")
    if learning_rate <= 0 or alpha_weight < 0 or tv_weight < 0:
        raise ValueError(
            f"learning_rate must be positive and the weights not negative, got {learning_rate}, {alpha_weight}, "
            f"{tv_weight}"
        )

    start = time.perf_counter()
    targets, step, param = _cached(model, ("inversion", *order), lambda: _inverter(model, tuple(order)))
    goals = targets(tf.constant(preprocess(photo)))
    for name, goal in zip(order, goals, strict=True):
        if not np.any(goal.numpy()):
            raise ValueError(f"layer {name!r} is zero everywhere on this photo: there is nothing to invert")
    k = len(order)
    noise = START * np.random.default_rng(seed).standard_normal(param.shape(1))
    z = tf.constant(np.repeat(noise, k, axis=1).astype(np.float32))  # every image starts from the same noise
    m = v = tf.zeros_like(z)
    rate = tf.constant(learning_rate, tf.float32)
    weights = tf.constant([alpha_weight, tv_weight], tf.float32)
    history = []
    for t in range(1, steps + 1):
        image = z
        z, m, v, error = step(z, m, v, tf.constant(float(t)), goals, rate, weights)
        history.append(error.numpy())  # the error of `image`, the images before this step's move
    images = deprocess(param.image(image).numpy()).reshape(k, *photo.shape)
    seconds = time.perf_counter() - start
    errors = np.array(history)
    made = {name: Reconstruction(images[i], name, errors[:, i], steps, seconds, photo) for i, name in enumerate(order)}
    return made[names[0]] if isinstance(layers, str) else [made[name] for name in names]


def plot_reconstructions(reconstructions: Sequence[Reconstruction], kept_at: float | None = None) -> Figure:
    """The photo and each reconstruction side by side, titled with the layer and its final relative feature
    error (the suptitle says each is on its own layer's output), and below them each one's correlation with
    the photo at each scale (`kept_per_scale`), with a dotted line at `kept_at` if
    given (the block chapters' rule for a band the search recovered). Block chapters."""
    recs = list(reconstructions)
    if not recs or not all(isinstance(r, Reconstruction) for r in recs):
        raise TypeError("plot_reconstructions needs a non-empty list of Reconstruction (from vggbook.invert)")
    photo = recs[0].photo
    if any(r.photo is not photo and not np.array_equal(r.photo, photo) for r in recs):
        raise ValueError("the reconstructions are of different photos; plot each photo's on its own")
    columns = len(recs) + 1
    image_height = PAGE_WIDTH / columns + 0.45
    fig = plt.figure(figsize=(PAGE_WIDTH, image_height + 2.3), layout="constrained")
    grid = fig.add_gridspec(2, columns, height_ratios=[image_height, 2.3])
    narrow = columns > 4  # five reconstructions and the photo: short, small titles, so that they do not touch
    shown = [("photo", photo)] + [(f"{r.layer}\nerror {r.feature_error:.1%}", r.image) for r in recs]
    title_size = 7 if narrow else 9
    for i, (title, image) in enumerate(shown):
        ax = fig.add_subplot(grid[0, i])
        ax.imshow(image)
        ax.set_title(title, fontsize=title_size)
        ax.set_axis_off()
    ax = fig.add_subplot(grid[1, :])
    for r in recs:
        kept = r.kept
        ax.plot(kept.index, kept.values, "o-", label=r.layer)
    ax.set_xscale("log", base=2)
    ax.set_xticks(kept.index, [f"{s}" for s in kept.index[:-1]] + [f"{kept.index[-1]}\n(rest)"])
    ax.set_ylim(min(-0.1, np.nanmin([r.kept.min() for r in recs]) - 0.05), 1.05)
    ax.axhline(0, color="grey", lw=0.8)
    if kept_at is not None:
        ax.axhline(kept_at, color="black", lw=0.8, ls=":", label=f"recovered (≥ {kept_at:g})")
    ax.set_xlabel("scale (px): band of the Laplacian pyramid")
    ax.set_ylabel("correlation\nwith the photo")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))  # beside the chart: it hides no point
    ax.grid(alpha=0.3)
    steps = {r.steps for r in recs}
    after = f" after {steps.pop()} steps" if len(steps) == 1 else ""
    source = recs[0].layer if len(recs) == 1 else "each layer"
    # the errors under the images are each on its own layer's output: said once, where the numbers are
    # (the second line short enough for the page width at 10 pt, tests/site/test_site.py)
    own = "on its layer's output" if len(recs) == 1 else "on its own layer's output: not comparable across layers"
    fig.suptitle(
        f"The photo reconstructed from {source}{after}, and what came back at each scale\n"
        f"(error: relative feature error, {own})",
        fontsize=10 if not narrow else 9,
    )
    return fig


def reconstruction_table(
    reconstructions: Sequence[Reconstruction], name: str, caption: str, kept_at: float | None = None
) -> NumberedTable:
    """One row per reconstruction: its steps, final relative feature error, how much it still fell over the last
    LATE_STEPS steps, and its correlation with the photo at each scale, as a numbered table; with `kept_at`, a
    correlation that two decimals would round onto it gets three (`near_threshold`). Block chapters."""
    rows = {}
    for r in reconstructions:
        row = {"steps": r.steps, "error": r.feature_error, f"fall over the last {r.late_steps} steps": r.late_drop}
        row.update({f"{scale} px": value for scale, value in r.kept.items()})
        rows[r.layer] = row
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "layer"
    shown = "{:.2f}".format if kept_at is None else (lambda v: near_threshold(v, kept_at))
    formats = {c: shown for c in frame.columns if c.endswith(" px")}
    formats.update({"error": "{:.1%}"} | {c: "{:.0%}" for c in frame.columns if c.startswith("fall over")})
    return numbered_table(frame, name, caption, formats)
