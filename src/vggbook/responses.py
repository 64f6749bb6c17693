"""What channels respond to, measured rather than described: the orientation and colour tuning of the first
layer's channels from drawn gratings (chapter "block1"), and the patches of the sample photographs that
excite a channel most — Distill's "dataset examples" (Olah et al. 2017) (chapters "block2" … "block5").

Both work the same on random and on trained weights; the chapters state what they measure in numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import cv2
import keras
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Markdown
from matplotlib.figure import Figure

from vggbook.features import check_layer_names, feature_maps
from vggbook.images import CAFFE_MEAN_BGR, preprocess
from vggbook.plotting import PAGE_WIDTH, NumberedTable, numbered_table, receptive_field_box

__all__ = ["DatasetExamples", "Tuning", "dataset_examples", "grating", "orientation_tuning", "tuning_table"]

ORIENTATIONS = np.arange(0, 180, 15)  # degrees: 12 orientations, half a turn (a grating at θ and θ+180° is the same)
PERIODS = (3, 4, 6, 8, 12)  # pixels per cycle: from the finest a 3×3 kernel can tell apart to broad bands
PHASES = 4  # gratings shifted by a quarter cycle each, so a filter's response does not depend on alignment
# The two poles of each grating, as RGB. "luminance": dark against light; the colour pairs swing two colours
# against each other around the same grey, the opponent axes of colour vision (red–green, blue–yellow).
CONTRASTS: dict[str, tuple[tuple[int, int, int], tuple[int, int, int]]] = {
    "luminance": ((0, 0, 0), (255, 255, 255)),
    "red–green": ((255, 0, 128), (0, 255, 128)),
    "blue–yellow": ((0, 0, 255), (255, 255, 0)),
}
SELECTIVE = 0.3  # orientation selectivity index above which the book calls a channel orientation-selective
GRATING_SIZE = 48  # px: several cycles of the broadest grating, and the border (where padding acts) cropped


def grating(orientation: float, period: float, phase: float = 0.0, contrast: str = "luminance", size: int = 48):
    """A sinusoidal grating, RGB uint8 (size, size, 3): stripes at `orientation` degrees (0 = vertical
    stripes, the intensity varying along x), `period` pixels per cycle, swinging between the two colours
    of `contrast` (a key of `CONTRASTS`) (chapter "block1")."""
    if contrast not in CONTRASTS:
        raise ValueError(f"unknown contrast {contrast!r}; choose one of {', '.join(CONTRASTS)}")
    if period <= 0 or size < 1:
        raise ValueError(f"need a positive period and size, got period={period}, size={size}")
    theta = np.deg2rad(orientation)
    # rounded, so that 90° gives exactly horizontal stripes (cos 90° is 6e-17 in floating point)
    along_x, along_y = np.round(np.cos(theta), 12), np.round(np.sin(theta), 12)
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    wave = 0.5 + 0.5 * np.cos(2 * np.pi * (x * along_x + y * along_y) / period + phase)
    low, high = (np.array(c, dtype=np.float64) for c in CONTRASTS[contrast])
    return np.round(low + wave[..., None] * (high - low)).astype(np.uint8)


@dataclass
class Tuning:
    """`orientation_tuning`'s result. `responses[c, k, o, p]`: channel c's mean output (over positions
    away from the border, and over phases) for contrast k, orientation o, period p."""

    layer: str
    responses: np.ndarray
    contrasts: tuple[str, ...]
    orientations: np.ndarray
    periods: tuple[int, ...]

    @property
    def channels(self) -> int:
        return self.responses.shape[0]

    @property
    def silent(self) -> np.ndarray:
        """Channels that are zero on every grating."""
        return self.responses.reshape(self.channels, -1).max(axis=1) <= 0

    def _luminance(self) -> np.ndarray:
        """(channels, orientations): each channel's response to luminance gratings at its best period."""
        lum = self.responses[:, self.contrasts.index("luminance")]  # (c, o, p)
        best_period = lum.max(axis=1).argmax(axis=1)
        return lum[np.arange(self.channels), :, best_period]

    @property
    def selectivity(self) -> np.ndarray:
        """Orientation selectivity index per channel, |Σ r(θ) e^{2iθ}| / Σ r(θ) over the luminance gratings
        at the channel's best period: 0 for the same response at every orientation, 1 for a response at one
        orientation only; NaN for a channel silent on them all."""
        r = self._luminance()
        vector = (r * np.exp(2j * np.deg2rad(self.orientations))).sum(axis=1)
        total = r.sum(axis=1)
        return np.divide(np.abs(vector), total, out=np.full(self.channels, np.nan), where=total > 0)

    @property
    def preferred(self) -> np.ndarray:
        """Preferred orientation per channel, degrees in [0, 180)."""
        r = self._luminance()
        vector = (r * np.exp(2j * np.deg2rad(self.orientations))).sum(axis=1)
        return np.rad2deg(np.angle(vector) / 2) % 180

    @property
    def colour_index(self) -> np.ndarray:
        """(C − L) / (C + L) per channel, with L its strongest response to any luminance grating and C to any
        colour grating: above 0 it responds more to colour contrast than to light–dark contrast."""
        strongest = self.responses.max(axis=(2, 3))  # (c, contrasts)
        lum = strongest[:, self.contrasts.index("luminance")]
        colour = np.delete(strongest, self.contrasts.index("luminance"), axis=1).max(axis=1)
        total = lum + colour
        return np.divide(colour - lum, total, out=np.full(self.channels, np.nan), where=total > 0)

    def counts(self) -> dict[str, int]:
        """How many channels are orientation-selective, prefer colour, are silent, in all."""
        osi, colour = self.selectivity, self.colour_index
        return {
            "channels": self.channels,
            "orientation-selective": int(np.sum(osi >= SELECTIVE)),
            "prefer colour": int(np.sum(colour > 0)),
            "silent": int(self.silent.sum()),
        }

    def plot(self) -> Figure:
        """Example gratings; every channel's orientation tuning (rows sorted by preferred orientation,
        each scaled to its own peak); selectivity against colour preference, one dot per channel."""
        fig = plt.figure(figsize=(PAGE_WIDTH, 4.4), layout="constrained")
        left, middle, right = fig.subfigures(1, 3, width_ratios=[0.9, 1.5, 1.6])
        examples = [("luminance", 0, 8), ("luminance", 45, 4), ("red–green", 90, 8), ("blue–yellow", 135, 6)]
        for ax, (contrast, angle, period) in zip(left.subplots(4, 1), examples, strict=True):
            ax.imshow(grating(angle, period, contrast=contrast, size=32), interpolation="nearest")
            ax.set_title(f"{contrast}, {angle}°, {period} px", fontsize=7)
            ax.set_axis_off()
        left.suptitle("gratings (4 of 180)", fontsize=9)

        tuning = self._luminance()
        order = np.argsort(np.where(self.silent, 999, self.preferred), kind="stable")
        peak = tuning.max(axis=1, keepdims=True)
        scaled = np.divide(tuning, peak, out=np.zeros_like(tuning), where=peak > 0)[order]
        ax = middle.subplots()
        shown = ax.imshow(scaled, aspect="auto", cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
        ax.set_xticks(range(0, len(self.orientations), 3), [f"{o}°" for o in self.orientations[::3]], fontsize=7)
        ax.set_yticks([])
        ax.set_xlabel("orientation of the stripes", fontsize=8)
        ax.set_ylabel(f"{self.channels} channels, by preferred orientation", fontsize=8)
        ax.set_title("tuning to light–dark gratings", fontsize=9)
        middle.colorbar(shown, ax=ax, location="bottom", shrink=0.8, label="share of the channel's peak")

        ax = right.subplots()
        ax.scatter(self.colour_index, self.selectivity, s=14, alpha=0.8)
        ax.axhline(SELECTIVE, color="grey", ls=":", lw=1)
        ax.axvline(0, color="grey", ls=":", lw=1)
        ax.set_xlim(-1.05, 1.05)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("colour preference (C − L)/(C + L)", fontsize=8)
        ax.set_ylabel("orientation selectivity index", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_title("one dot per channel", fontsize=9)
        fig.suptitle(
            f"{self.layer}: responses to {len(self.contrasts) * len(self.orientations) * len(self.periods)} gratings",
            fontsize=10,
        )
        return fig

    @property
    def summary(self) -> Markdown:
        n = self.counts()
        osi = self.selectivity[~np.isnan(self.selectivity)]
        return Markdown(
            f"Of the **{n['channels']}** channels of `{self.layer}`, **{n['orientation-selective']}** are "
            f"orientation-selective (index ≥ {SELECTIVE}; the median index is {np.median(osi):.2f}), "
            f"**{n['prefer colour']}** respond more strongly to a colour grating than to any light–dark one, "
            f"and **{n['silent']}** are zero on every grating."
        )


def orientation_tuning(
    model: keras.Model,
    layer: str = "block1_conv1",
    *,
    orientations: Sequence[float] = tuple(ORIENTATIONS),
    periods: Sequence[int] = PERIODS,
    contrasts: Sequence[str] = tuple(CONTRASTS),
) -> Tuning:
    """Each channel of a first-block layer's response to sinusoidal gratings of every orientation, period
    and contrast (`grating`), averaged over positions away from the border and over 4 phases: the
    measurement of Hubel and Wiesel's simple cells, applied to a network (chapter "block1"). The gratings
    are preprocessed as the photos are, and run through the model's layers up to `layer` only."""
    (layer,) = check_layer_names(model, [layer])
    chain = []
    for lyr in model.layers:
        if isinstance(lyr, keras.layers.InputLayer):
            continue
        chain.append(lyr)
        if lyr.name == layer:
            break
    if any(isinstance(lyr, keras.layers.MaxPooling2D) for lyr in chain[:-1]):
        raise ValueError(f"{layer!r} is past the first pool: gratings measure the first block's layers")
    stimuli = np.stack(
        [
            grating(o, p, phase, contrast=k, size=GRATING_SIZE)
            for k in contrasts
            for o in orientations
            for p in periods
            for phase in np.arange(PHASES) * np.pi / 2
        ]
    )
    margin = len(chain)  # each 3×3 convolution's zero padding reaches one pixel further in
    means = []
    for batch in np.array_split(preprocess(stimuli), max(1, len(stimuli) // 64)):  # ~40 MB of maps at a time
        x = batch
        for lyr in chain:
            x = lyr(x)
        means.append(keras.ops.convert_to_numpy(x)[:, margin:-margin, margin:-margin, :].mean(axis=(1, 2)))
    means = np.concatenate(means)  # (stimuli, channels)
    shape = (len(contrasts), len(orientations), len(periods), PHASES, means.shape[-1])
    responses = means.reshape(shape).mean(axis=3)  # over phases
    return Tuning(layer, np.moveaxis(responses, -1, 0), tuple(contrasts), np.asarray(orientations), tuple(periods))


def tuning_table(tunings: Mapping[str, Tuning], name: str, caption: str) -> NumberedTable:
    """Several `orientation_tuning` results side by side, one row each, as a numbered table (chapter
    "block1": the page's first layer against a freshly initialised one)."""
    rows = {}
    for label, tuning in tunings.items():
        osi = tuning.selectivity[~np.isnan(tuning.selectivity)]
        rows[label] = {
            "channels": tuning.channels,
            f"orientation-selective (index ≥ {SELECTIVE})": tuning.counts()["orientation-selective"],
            "median selectivity index": float(np.median(osi)) if osi.size else np.nan,
            "prefer colour": tuning.counts()["prefer colour"],
            "silent on every grating": tuning.counts()["silent"],
        }
    frame = pd.DataFrame(rows).T.astype({"channels": int, "prefer colour": int, "silent on every grating": int})
    frame = frame.astype({f"orientation-selective (index ≥ {SELECTIVE})": int})
    frame.index.name = "first layer"
    return numbered_table(frame, name, caption, {"median selectivity index": "{:.2f}"})


@dataclass
class DatasetExamples:
    """`dataset_examples`' result: for each channel, its strongest units across the photos, as
    (photo name, row, col, value) and the receptive-field patch of each."""

    layer: str
    channels: list[int]
    found: dict[int, list[tuple[str, int, int, float]]]
    patches: dict[int, list[np.ndarray]]
    silent: pd.Series  # per photo, the fraction of the layer's channels that are zero everywhere on it
    silent_everywhere: int  # channels zero on every photo
    total_channels: int

    def plot(self) -> Figure:
        """One row per channel: its strongest patches, best first, each labelled with its photo and value."""
        k = max(len(p) for p in self.patches.values())
        rows = len(self.channels)
        fig, axes = plt.subplots(rows, k, figsize=(PAGE_WIDTH, 1.18 * rows + 0.5), layout="constrained", squeeze=False)
        for r, channel in enumerate(self.channels):
            for c in range(k):
                ax = axes[r, c]
                ax.set_xticks([])
                ax.set_yticks([])
                for spine in ax.spines.values():
                    spine.set_visible(False)
                if c < len(self.patches[channel]):
                    name, _, _, value = self.found[channel][c]
                    ax.imshow(self.patches[channel][c])
                    ax.set_title(f"{name.split('_')[0][:11]} {value:.3g}", fontsize=7)
            axes[r, 0].set_ylabel(f"ch {channel}", fontsize=8)
        fig.suptitle(
            f"{self.layer}: the patches of the photos that excite each channel most (its receptive field)",
            fontsize=10,
        )
        return fig

    @property
    def summary(self) -> Markdown:
        sources = [name for found in self.found.values() for name, *_ in found]
        distinct = sorted(set(sources))
        own = max(set(sources), key=sources.count)
        return Markdown(
            f"On the cat photograph **{self.silent.get('chelsea', np.nan):.0%}** of the {self.total_channels} "
            f"channels of `{self.layer}` are zero everywhere; over the {len(self.silent)} photos that share "
            f"ranges from {self.silent.min():.0%} to {self.silent.max():.0%}, and **{self.silent_everywhere}** "
            f"channels are zero on every photo. The {len(sources)} patches shown come from "
            f"**{len(distinct)}** of the {len(self.silent)} photos; the most frequent, {own}, gives "
            f"{sources.count(own)} of them."
        )


def _field_patch(photo: np.ndarray, table: pd.DataFrame, layer: str, row: int, col: int, size: int) -> np.ndarray:
    """The square of the photo unit (row, col) sees, `size`×`size`: where the field reaches past the photo's
    edge, the padding the network sees there, which is 0 after preprocessing — the ImageNet mean colour."""
    field, stride, pad = (int(table.loc[layer, key]) for key in ("receptive_field", "stride", "padding"))
    x0, y0, x1, y1 = receptive_field_box(table, layer, row, col, photo.shape[0])
    square = np.empty((field, field, 3), dtype=np.uint8)
    square[:] = np.round(CAFFE_MEAN_BGR[::-1]).astype(np.uint8)
    top, left = y0 - (row * stride - pad), x0 - (col * stride - pad)
    square[top : top + y1 - y0 + 1, left : left + x1 - x0 + 1] = photo[y0 : y1 + 1, x0 : x1 + 1]
    shrink = field > size
    return cv2.resize(square, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_NEAREST)


def dataset_examples(
    model: keras.Model,
    layer: str,
    channels: Sequence[int],
    photos: Mapping[str, np.ndarray],
    table: pd.DataFrame,
    *,
    k: int = 6,
    patch: int = 64,
) -> DatasetExamples:
    """For each of `channels` of `layer`, the `k` units with the highest value across all `photos` (RGB
    uint8, 224×224) — at most one per neighbourhood, so that one bright spot does not fill the row — and
    the photo patch each one sees (its receptive field, from the layer table `table`, resized to `patch`
    pixels). One forward pass per photo, up to `layer` only. Olah et al. 2017's "dataset examples"
    (chapters "block2" … "block5")."""
    (layer,) = check_layer_names(model, [layer])
    if not photos:
        raise ValueError("dataset_examples needs at least one photo")
    names = list(photos)
    stack = np.stack([np.asarray(photos[name]) for name in names])
    if stack.shape[1:] != (224, 224, 3) or stack.dtype != np.uint8:
        raise ValueError(f"photos must be RGB uint8 of shape (224, 224, 3), got {stack.dtype} {stack.shape[1:]}")
    # one photo at a time: the early layers' maps of a whole batch would cost far more memory than the result
    out = np.concatenate([feature_maps(model, preprocess(photo), [layer])[layer] for photo in stack])  # (n, h, w, C)
    channels = [int(c) for c in channels]
    bad = [c for c in channels if not 0 <= c < out.shape[-1]]
    if bad or not channels:
        raise ValueError(f"channels must be indices 0–{out.shape[-1] - 1} of {layer!r}, got {list(channels)}")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    stride = int(table.loc[layer, "stride"])
    apart = max(1, int(table.loc[layer, "receptive_field"]) // (2 * stride))  # units: half a field apart
    found, patches = {}, {}
    for channel in channels:
        values = out[..., channel]
        chosen: list[tuple[str, int, int, float]] = []
        for flat in np.argsort(-values, axis=None, kind="stable"):
            if len(chosen) == k or values.flat[flat] <= 0:
                break
            i, r, c = np.unravel_index(flat, values.shape)
            if any(names[i] == n and abs(r - rr) < apart and abs(c - cc) < apart for n, rr, cc, _ in chosen):
                continue
            chosen.append((names[i], int(r), int(c), float(values[i, r, c])))
        found[channel] = chosen
        patches[channel] = []
        for name, r, c, _ in chosen:
            patches[channel].append(_field_patch(photos[name], table, layer, r, c, patch))
    zero = out.max(axis=(1, 2)) <= 0  # (n, C): channel zero everywhere on photo i
    silent = pd.Series(zero.mean(axis=1), index=names)
    return DatasetExamples(layer, channels, found, patches, silent, int(zero.all(axis=0).sum()), out.shape[-1])
