"""What channels respond to, measured rather than described: the orientation and colour tuning of the first
layer's channels from drawn gratings (chapter "block1"), and the patches of the sample photographs that
excite a channel most — Distill's "dataset examples" (Olah et al. 2017) (chapters "block2" … "block5").

Both work the same on random and on trained weights; the chapters state what they measure in numbers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import keras
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Markdown
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from vggbook.features import check_layer_names, feature_maps
from vggbook.images import CAFFE_MEAN_BGR, preprocess
from vggbook.plotting import PAGE_WIDTH, NumberedTable, numbered_table, receptive_field_box

__all__ = [
    "DatasetExamples",
    "Tuning",
    "dataset_examples",
    "grating",
    "ideal_edge_selectivity",
    "orientation_tuning",
    "stimulus_count",
    "tuning_table",
]

ORIENTATIONS = np.arange(0, 180, 15)  # degrees: 12 orientations, half a turn (a grating at θ and θ+180° is the same)
PERIODS = (3, 4, 6, 8, 12)  # pixels per cycle: from the finest a 3×3 kernel can tell apart to broad bands
PHASES = 4  # gratings shifted by a quarter cycle each, so a filter's response does not depend on alignment
# Each grating swings around mid-grey along one direction of RGB space, all with the same strength (the same
# distance in RGB between the two poles): light–dark along (1, 1, 1); red–green along (1, −1, 0) and
# blue–yellow along (−½, −½, 1), the opponent axes of colour vision, which keep the mean of R, G and B
# constant (they are not equiluminant for the eye, which weighs green most).
CONTRASTS: dict[str, tuple[float, float, float]] = {
    "light–dark": (1.0, 1.0, 1.0),
    "red–green": (1.0, -1.0, 0.0),
    "blue–yellow": (-0.5, -0.5, 1.0),
}
STRENGTH = 156.0  # RGB distance from mid-grey to either pole: the most the blue–yellow axis allows in 0–255
SELECTIVE = 0.3  # orientation selectivity index above which the book calls a channel orientation-selective
GRATING_SIZE = 32  # px: over two cycles of the broadest grating, with the border (where padding acts) cropped


def grating(orientation: float, period: float, phase: float = 0.0, contrast: str = "light–dark", size: int = 32):
    """A sinusoidal grating, RGB uint8 (size, size, 3): stripes across the direction `orientation` degrees
    (0° = vertical stripes, the intensity varying along x; 90° = horizontal stripes), `period` pixels per
    cycle, swinging around mid-grey along the colour axis `contrast` (a key of `CONTRASTS`), all of the
    same strength (chapter "block1")."""
    if contrast not in CONTRASTS:
        raise ValueError(f"unknown contrast {contrast!r}; choose one of {', '.join(CONTRASTS)}")
    if period <= 0 or size < 1:
        raise ValueError(f"need a positive period and size, got period={period}, size={size}")
    theta = np.deg2rad(orientation)
    # rounded, so that 90° gives exactly horizontal stripes (cos 90° is 6e-17 in floating point)
    along_x, along_y = np.round(np.cos(theta), 12), np.round(np.sin(theta), 12)
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    wave = np.cos(2 * np.pi * (x * along_x + y * along_y) / period + phase)  # −1 … 1
    axis = np.array(CONTRASTS[contrast]) / np.linalg.norm(CONTRASTS[contrast])
    return np.round(127.5 + STRENGTH * wave[..., None] * axis).astype(np.uint8)


def stimulus_count(
    orientations: Sequence[float] = tuple(ORIENTATIONS),
    periods: Sequence[int] = PERIODS,
    contrasts: Sequence[str] = tuple(CONTRASTS),
) -> tuple[int, int]:
    """(gratings, images): orientation × period × contrast, and that times the phases (chapter "block1")."""
    gratings = len(orientations) * len(periods) * len(contrasts)
    return gratings, gratings * PHASES


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

    def _light_dark(self) -> np.ndarray:
        """(channels, orientations): each channel's response to light–dark gratings at its best period."""
        lum = self.responses[:, self.contrasts.index("light–dark")]  # (c, o, p)
        best_period = lum.max(axis=1).argmax(axis=1)
        return lum[np.arange(self.channels), :, best_period]

    def _vector(self) -> np.ndarray:
        return (self._light_dark() * np.exp(2j * np.deg2rad(self.orientations))).sum(axis=1)

    @property
    def selectivity(self) -> np.ndarray:
        """Orientation selectivity index per channel, |Σ r(θ) e^{2iθ}| / Σ r(θ) over the light–dark gratings
        at the channel's best period (one minus the circular variance): 0 for the same response at every
        orientation, higher the more one orientation dominates; NaN for a channel silent on them all."""
        total = self._light_dark().sum(axis=1)
        return np.divide(np.abs(self._vector()), total, out=np.full(self.channels, np.nan), where=total > 0)

    @property
    def preferred(self) -> np.ndarray:
        """Preferred orientation per channel, degrees in [0, 180) (0° = vertical stripes)."""
        return np.rad2deg(np.angle(self._vector()) / 2) % 180

    def colour_preference(self, contrast: str) -> np.ndarray:
        """(C − L) / (C + L) per channel, with C its strongest response to a grating of the colour axis
        `contrast` and L to a light–dark one: above 0 it responds more to that colour contrast."""
        strongest = self.responses.max(axis=(2, 3))  # (channels, contrasts)
        lum, colour = strongest[:, self.contrasts.index("light–dark")], strongest[:, self.contrasts.index(contrast)]
        total = lum + colour
        return np.divide(colour - lum, total, out=np.full(self.channels, np.nan), where=total > 0)

    def counts(self) -> dict[str, float]:
        """Orientation-selective channels, the median selectivity index, the channels that prefer each colour
        axis to light–dark, and the silent ones."""
        osi = self.selectivity[~np.isnan(self.selectivity)]
        found = {
            f"orientation-selective (index ≥ {SELECTIVE})": int(np.sum(osi >= SELECTIVE)),
            "median selectivity index": float(np.median(osi)) if osi.size else np.nan,
        }
        for contrast in self.contrasts:
            if contrast != "light–dark":
                found[f"prefer {contrast}"] = int(np.sum(self.colour_preference(contrast) > 0))
        found["silent"] = int(self.silent.sum())
        return found

    def plot(self) -> Figure:
        """Example gratings; every channel's tuning to light–dark gratings (rows sorted by preferred
        orientation, each at its best period and scaled to its own peak); orientation selectivity against
        the preference for each colour axis, one dot per channel and axis."""
        gratings, images = stimulus_count(self.orientations, self.periods, self.contrasts)
        fig = plt.figure(figsize=(PAGE_WIDTH, 4.6), layout="constrained")
        left, middle, right = fig.subfigures(1, 3, width_ratios=[0.9, 1.5, 1.6])
        examples = [("light–dark", 0, 8), ("light–dark", 45, 4), ("red–green", 90, 8), ("blue–yellow", 135, 6)]
        for ax, (contrast, angle, period) in zip(left.subplots(4, 1), examples, strict=True):
            ax.imshow(grating(angle, period, contrast=contrast, size=32), interpolation="nearest")
            ax.set_title(f"{contrast}, {angle}°, {period} px", fontsize=7)
            ax.set_axis_off()
        left.suptitle(f"4 of {gratings} gratings", fontsize=9)

        tuning = self._light_dark()
        order = np.argsort(np.where(self.silent, 999, self.preferred), kind="stable")
        peak = tuning.max(axis=1, keepdims=True)
        scaled = np.divide(tuning, peak, out=np.zeros_like(tuning), where=peak > 0)[order]
        ax = middle.subplots()
        shown = ax.imshow(scaled, aspect="auto", cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
        ax.set_xticks(range(0, len(self.orientations), 3), [f"{o}°" for o in self.orientations[::3]], fontsize=7)
        ax.set_yticks([])
        ax.set_xlabel("direction across the stripes\n(0° = vertical stripes)", fontsize=8)
        ax.set_ylabel(f"{self.channels} channels, by preferred orientation", fontsize=8)
        ax.set_title("light–dark, best period", fontsize=9)
        middle.colorbar(shown, ax=ax, location="bottom", shrink=0.8, label="share of the channel's peak")

        ax = right.subplots()
        for contrast, marker in zip([c for c in self.contrasts if c != "light–dark"], "os", strict=False):
            ax.scatter(
                self.colour_preference(contrast), self.selectivity, s=12, alpha=0.7, marker=marker, label=contrast
            )
        ax.axhline(SELECTIVE, color="grey", ls=":", lw=1)
        ax.axvline(0, color="grey", ls=":", lw=1)
        ax.set_xlim(-1.05, 1.05)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("colour preference (C − L)/(C + L)", fontsize=8)
        ax.set_ylabel("orientation selectivity index", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7, loc="upper left")
        ax.set_title("one dot per channel and colour axis", fontsize=9)
        fig.suptitle(
            f"{self.layer}: responses to {gratings} gratings in {PHASES} phases ({images} images)", fontsize=10
        )
        return fig

    @property
    def summary(self) -> Markdown:
        n = self.counts()
        colours = [k for k in n if k.startswith("prefer ")]
        preferences = " and ".join(f"**{n[k]}** respond more to a {k.removeprefix('prefer ')} grating" for k in colours)
        return Markdown(
            f"Of the {self.channels} channels of `{self.layer}`, **{n[next(iter(n))]}** are orientation-selective "
            f"(index ≥ {SELECTIVE}; the median index is {n['median selectivity index']:.2f}); {preferences} than "
            f"to any light–dark one; **{n['silent']}** are zero on every grating."
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
    and contrast (`grating`), averaged over positions away from the border and over 4 phases — the way
    orientation tuning is measured in the visual cortex (Ringach et al. 2002) (chapter "block1"). The
    gratings are preprocessed as the photos are, and run through the model's layers up to `layer` only."""
    (layer,) = check_layer_names(model, [layer])
    if "light–dark" not in contrasts:
        raise ValueError("contrasts must include 'light–dark': selectivity is measured on it")
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
    for batch in np.array_split(preprocess(stimuli), len(contrasts)):  # a contrast at a time: smaller maps in memory
        for lyr in chain:
            batch = lyr(batch)
        means.append(keras.ops.convert_to_numpy(batch)[:, margin:-margin, margin:-margin, :].mean(axis=(1, 2)))
    means = np.concatenate(means)  # (stimuli, channels)
    shape = (len(contrasts), len(orientations), len(periods), PHASES, means.shape[-1])
    responses = means.reshape(shape).mean(axis=3)  # over phases
    return Tuning(layer, np.moveaxis(responses, -1, 0), tuple(contrasts), np.asarray(orientations), tuple(periods))


def ideal_edge_selectivity() -> float:
    """The orientation selectivity index of an ideal 3×3 vertical-edge detector (−1, 0, +1 columns on every
    colour, no bias): a linear detector's broad tuning, for scale; a channel held below zero at most
    orientations (by its bias, or its response to the gratings' mid-grey) scores higher (chapter "block1")."""
    kernel = np.zeros((3, 3, 3, 1), np.float32)
    kernel[:, 0], kernel[:, 2] = -1.0, 1.0
    conv = keras.layers.Conv2D(1, (3, 3), padding="same", activation="relu", name="edge")
    net = keras.Sequential([keras.Input(shape=(None, None, 3)), conv])
    conv.set_weights([kernel, np.zeros(1, np.float32)])
    return float(orientation_tuning(net, "edge").selectivity[0])


def tuning_table(tunings: Mapping[str, Tuning | Sequence[Tuning]], name: str, caption: str) -> NumberedTable:
    """`orientation_tuning` results side by side as a numbered table: one row per result, or, for a list of
    results (freshly initialised layers, one per seed), one row "median (lowest–highest)" (chapter "block1")."""
    rows = {}
    for label, found in tunings.items():
        if isinstance(found, Tuning):
            rows[label] = found.counts()
            continue
        counts = pd.DataFrame([t.counts() for t in found])
        shown = {column: ".2f" if column == "median selectivity index" else "g" for column in counts.columns}
        rows[label] = {
            column: f"{values.median():{shown[column]}} ({values.min():{shown[column]}}–{values.max():{shown[column]}})"
            for column, values in counts.items()
        }
    frame = pd.DataFrame(rows).T
    frame.index.name = "first layer"
    formats = {"median selectivity index": lambda v: v if isinstance(v, str) else f"{v:.2f}"}
    return numbered_table(frame, name, caption, formats)


@dataclass
class DatasetExamples:
    """`dataset_examples`' result: for each channel, its strongest units across the photos, as
    (photo name, row, col, value) and the receptive-field patch of each. `silent` is indexed by the photos in
    the order searched; the first is the page's own."""

    layer: str
    channels: list[int]
    found: dict[int, list[tuple[str, int, int, float]]]
    patches: dict[int, list[np.ndarray]]  # each the unit's whole receptive field, field × field pixels
    inside: dict[int, list[tuple[int, int, int, int]]]  # per patch, the part inside the photo: top, left, h, w
    silent: pd.Series  # per photo, the fraction of the layer's channels that are zero everywhere on it
    silent_everywhere: int  # channels zero on every photo
    total_channels: int
    field: int  # the layer's receptive field, px
    apart: int  # positions two patches of one photo are at least apart, so that their fields never overlap
    map_size: tuple[int, int]  # the layer's map, (h, w)

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
                    square = self.patches[channel][c]
                    ax.imshow(square, interpolation="nearest" if len(square) < 64 else "antialiased")
                    top, left, h, w = self.inside[channel][c]
                    if (h, w) != square.shape[:2]:  # the field reaches past the photo's edge: mark the edge
                        ax.add_patch(Rectangle((left - 0.5, top - 0.5), w, h, fill=False, ec="white", lw=0.8, ls="--"))
                    ax.set_title(f"{name.split('_')[0][:11]} {value:.3g}", fontsize=7)
            axes[r, 0].set_ylabel(f"ch {channel}", fontsize=8)
        fig.suptitle(
            f"{self.layer}: the patches of the images that excite each channel most (its receptive field)",
            fontsize=10,
        )
        return fig

    @property
    def past_edge(self) -> int:
        """How many of the shown patches are fields that reach past their image's edge (dashed in the figure)."""
        return sum((h, w) != (self.field, self.field) for parts in self.inside.values() for _, _, h, w in parts)

    @property
    def shared(self) -> tuple[int, int]:
        """How many of the images in the rows appear in two or more channels' rows, and how many channels have
        their strongest patch in an image that is another channel's strongest too."""
        rows = Counter(name for found in self.found.values() for name in {n for n, *_ in found})
        firsts = Counter(found[0][0] for found in self.found.values() if found)
        return sum(count > 1 for count in rows.values()), sum(count for count in firsts.values() if count > 1)

    @property
    def summary(self) -> Markdown:
        """What to see in the figure: where the patches come from, how many images the channels share, how
        many patches reach past an image's edge, and the channels silent on the photo."""
        sources = [name for found in self.found.values() for name, *_ in found]
        distinct = set(sources)
        counted = Counter(sources)
        times = max(counted.values())
        frequent = [name for name in counted if counted[name] == times]  # in the order first met
        firsts = {found[0][0] for found in self.found.values() if found}
        silent = (self.silent * self.total_channels).round().astype(int)
        reference = self.silent.index[0]  # the page's photo: the first image searched
        in_rows, same_first = self.shared
        channels = len(self.channels)
        if len(firsts) == 1 and channels > 1:
            first = f"all {channels} channels have their strongest patch in {next(iter(firsts))}"
        else:
            first = (
                f"their strongest patches come from {len(firsts)} different images, and "
                + (f"all {channels}" if same_first == channels else f"{same_first} of the {channels}")
                + " channels share the image of their strongest patch with another channel"
            )
        h, w = self.map_size
        most = -(-h // self.apart) * -(-w // self.apart)
        past = self.past_edge
        return Markdown(
            f"The {len(sources)} patches come from **{len(distinct)}** of the {len(silent)} images, "
            + (
                f"{times} of them from {frequent[0]}"
                if len(frequent) == 1
                else f"{times} each from {', '.join(frequent[:-1])} and {frequent[-1]}, tied for the most"
            )
            + (
                f"; **all {in_rows}** of those images are"
                if in_rows == len(distinct) > 1
                else f"; **{in_rows}** of those {len(distinct)} images {'is' if in_rows == 1 else 'are'}"
            )
            + f" in the rows of two or more channels; {first}. "
            f"Each patch is {self.field} px wide, one image can give a channel at most {most} that do not overlap, "
            f"and **{past}** of the {len(sources)} "
            + ("reaches past its" if past == 1 else "reach past their")
            + " image's edge (the dashed line). "
            f"On {reference}, **{silent[reference]}** of the {self.total_channels} "
            f"channels of `{self.layer}` {'is' if silent[reference] == 1 else 'are'} zero everywhere; on every "
            f"image, **{self.silent_everywhere}**."
        )


def _field_patch(
    photo: np.ndarray, table: pd.DataFrame, layer: str, row: int, col: int
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The square of the photo unit (row, col) sees, and the part of it inside the photo as (top, left, height,
    width). Where the field reaches past the photo's edge, the square is ImageNet's mean colour: what the
    first convolution's zero padding amounts to after preprocessing (deeper layers pad their own maps)."""
    field, stride, pad = (int(table.loc[layer, key]) for key in ("receptive_field", "stride", "padding"))
    x0, y0, x1, y1 = receptive_field_box(table, layer, row, col, photo.shape[0])
    square = np.empty((field, field, 3), dtype=np.uint8)
    square[:] = np.round(CAFFE_MEAN_BGR[::-1]).astype(np.uint8)
    top, left = y0 - (row * stride - pad), x0 - (col * stride - pad)
    square[top : top + y1 - y0 + 1, left : left + x1 - x0 + 1] = photo[y0 : y1 + 1, x0 : x1 + 1]
    return square, (top, left, y1 - y0 + 1, x1 - x0 + 1)


def dataset_examples(
    model: keras.Model,
    layer: str,
    channels: Sequence[int],
    photos: Mapping[str, np.ndarray],
    table: pd.DataFrame,
    *,
    k: int = 6,
) -> DatasetExamples:
    """For each of `channels` of `layer`, the `k` units with the highest value across all `photos` (RGB
    uint8, 224×224) — no two whose receptive fields overlap, so that one bright spot does not fill the row — and
    the photo patch each one sees (its receptive field, from the layer table `table`). One forward pass per
    photo, up to `layer` only. Olah et al. 2017's "dataset examples"
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
    field, stride = (int(table.loc[layer, key]) for key in ("receptive_field", "stride"))
    apart = max(1, -(-field // stride))  # a whole field apart: no overlap
    found, patches, inside = {}, {}, {}
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
        patches[channel], inside[channel] = [], []
        for name, r, c, _ in chosen:
            square, part = _field_patch(photos[name], table, layer, r, c)
            patches[channel].append(square)
            inside[channel].append(part)
    zero = out.max(axis=(1, 2)) <= 0  # (n, C): channel zero everywhere on photo i
    silent = pd.Series(zero.mean(axis=1), index=names)
    everywhere = int(zero.all(axis=0).sum())
    return DatasetExamples(
        layer, channels, found, patches, inside, silent, everywhere, out.shape[-1], field, apart, tuple(out.shape[1:3])
    )
