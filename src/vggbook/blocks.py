"""What the five block chapters share, one call per idea (chapters "block1" … "block5").

A block chapter opens the network and the photograph once (`open_block`), sets the block beside the one
before (`compare_blocks`; block 5 sets all five side by side, `compare_all`), writes its block's Keras lines
out on the page and checks them against the helper's (`check_block`), and then asks this module for the
sections every block chapter has: what the block costs (`block_cost`), what one unit sees (`unit_field`),
how its numbers are distributed (`activation_stats`) and which patches of a gallery of photos excite its
channels most (`channel_examples`). Block 1 explains each method in full; blocks 2–5 link to it and spend
their words on their own block. Each result offers its table, its figure (`.plot()`) and a sentence of its
numbers (`.summary`, Markdown that the chapters show in a cell whose code the site hides).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import cv2
import keras
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Markdown
from matplotlib.figure import Figure

from vggbook.architecture import block_layers, build_vgg16, layer_table
from vggbook.features import feature_maps
from vggbook.images import GALLERY, preprocess, sample_image
from vggbook.images import photo as read_photo
from vggbook.interpret import effective_receptive_field
from vggbook.inversion import (
    LATE_STEPS,
    STEPS,
    Reconstruction,
    band_periods,
    invert,
    near_threshold,
    plot_reconstructions,
    reconstruction_table,
)
from vggbook.plotting import (
    PAGE_WIDTH,
    NumberedTable,
    amount,
    draw_box,
    layer_table_view,
    numbered_table,
    rank_channels,
    receptive_field_box,
)
from vggbook.responses import DatasetExamples, dataset_examples
from vggbook.weights import describe_weights

__all__ = [
    "Block",
    "activation_stats",
    "band_grid",
    "block_cost",
    "channel_examples",
    "check_block",
    "compare_all",
    "compare_blocks",
    "maps_summary",
    "open_block",
    "unit_field",
    "what_it_keeps",
]

BLOCKS = range(1, 6)


@dataclass
class Block:
    """One block chapter's shared state, made once by `open_block`: VGG16's convolutional base, the
    photograph (RGB uint8) and its name, its preprocessed batch `x`, every conv and pool output from one
    forward pass, and the layer table (block chapters). Measurements that several sections use (a unit's
    gradient, a block's profile) are kept here once made."""

    number: int
    model: keras.Model
    photo: np.ndarray
    x: np.ndarray
    maps: dict[str, np.ndarray]
    table: pd.DataFrame
    photo_name: str = "the photo"
    measured: dict = field(default_factory=dict, repr=False)

    @property
    def layers(self) -> list[str]:
        """The block's layer names in order: its convolutions, then its pool."""
        return [layer.name for layer in block_layers(self.model, self.number)]

    @property
    def input_name(self) -> str:
        """What the block reads: "input" (the preprocessed photo) or the previous block's pool."""
        return "input" if self.number == 1 else f"block{self.number - 1}_pool"

    @property
    def input(self) -> np.ndarray:
        """The array the block reads, (1, h, w, C)."""
        return self.x if self.number == 1 else self.maps[self.input_name]

    def _once(self, key: tuple, make):
        """`make()` the first time `key` is asked for, the same result after that."""
        if key not in self.measured:
            self.measured[key] = make()
        return self.measured[key]


def _block_number(number: int) -> int:
    if not isinstance(number, int | np.integer) or number not in BLOCKS:
        raise ValueError(f"VGG16 has blocks 1–5, not {number!r}")
    return int(number)


def _photo(photo) -> tuple[np.ndarray, str]:
    """The photo the network sees, RGB uint8 (224, 224, 3), and its name: from a `vggbook.photo()` result
    (anything with `.image` and `.name`), a source `vggbook.photo` reads (a sample name, a path, a URL), or
    an array already cropped to 224×224."""
    if isinstance(photo, str | os.PathLike):
        photo = read_photo(photo)
    image = np.asarray(getattr(photo, "image", photo))
    if image.shape != (224, 224, 3) or image.dtype != np.uint8:
        raise ValueError(
            f"the photo must be RGB uint8 of shape (224, 224, 3), got {image.dtype} {image.shape}: pass "
            "vggbook.photo(...) (a path, a URL or a sample name) or the name itself"
        )
    return image, str(getattr(photo, "name", "") or "the photo")


def open_block(number: int, photo: object = None, *, weights: str = "auto") -> Block:
    """Build VGG16's convolutional base (`include_top=False`: no block chapter reads the fully connected
    head), print which weights it carries, take the photograph (a `vggbook.photo()` result, what
    `vggbook.photo` reads, or a 224×224 RGB array; None: `vggbook.photo()`'s default), run ONE forward pass
    for every conv and pool output, and make the layer table (block chapters)."""
    number = _block_number(number)
    image, name = _photo(read_photo() if photo is None else photo)  # checked before the network is built
    model = build_vgg16(include_top=False, weights=weights)
    print(describe_weights(model))
    x = preprocess(image)
    return Block(number, model, image, x, feature_maps(model, x), layer_table(model), name)


def _settings(layer: keras.layers.Layer) -> tuple[str, str, dict]:
    """What a layer computes (name, kind, settings), not how its weights start."""
    keys = ("filters", "kernel_size", "strides", "padding", "activation", "pool_size")
    return layer.name, type(layer).__name__, {k: v for k, v in layer.get_config().items() if k in keys}


def check_block(block: Block, written: list[keras.layers.Layer]) -> keras.Model:
    """Check the block's layers as the chapter writes them out against the helper's block: the same
    layers with the same settings, in order; then give them the helper's weights, run them on the block's
    input and require the helper's output. Prints the shapes in and out; returns the written-out block as
    a model (block chapters)."""
    helper = block_layers(block.model, block.number)
    ours, theirs = [_settings(layer) for layer in written], [_settings(layer) for layer in helper]
    if ours != theirs:
        wrong = [f"{a} ≠ {b}" for a, b in zip(ours, theirs, strict=False) if a != b]
        raise AssertionError(
            f"the written-out block {block.number} differs from the helper's ({len(ours)} vs {len(theirs)} "
            f"layers): " + "; ".join(wrong or ["a layer is missing or extra"])
        )
    inputs = keras.Input(shape=block.input.shape[1:], name=block.input_name)
    y = inputs
    for layer in written:
        y = layer(y)
    block_model = keras.Model(inputs, y, name=f"block{block.number}")
    for ours_layer, helper_layer in zip(written, helper, strict=True):
        ours_layer.set_weights(helper_layer.get_weights())
    out = keras.ops.convert_to_numpy(block_model(block.input, training=False))
    expected = block.maps[block.layers[-1]]
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    names = [block.input_name, *block.layers]
    arrays = [block.input, *(block.maps[name] for name in block.layers)]
    width = max(len(name) for name in names)
    for name, array in zip(names, arrays, strict=True):
        print(f"{name:>{width}}  {tuple(array.shape)}")
    convs = sum(isinstance(layer, keras.layers.Conv2D) for layer in written)
    pools = len(written) - convs
    parts = f"{convs} convolution{'s' if convs != 1 else ''} and " + ("a pool" if pools == 1 else f"{pools} pools")
    print(
        f"the {parts} written out are the helper's block {block.number}: same settings, and "
        f"with its weights the same output (largest difference {np.abs(out - expected).max():.1e})"
    )
    return block_model


def maps_summary(block: Block, strongest: int = 5) -> Markdown:
    """What to see in the block's montages: per layer, the channels that are zero everywhere on the photo,
    and the mean of the strongest channels of its last convolution (block chapters)."""
    silent = {name: int(np.sum(block.maps[name][0].max(axis=(0, 1)) <= 0)) for name in block.layers}
    channels = block.maps[block.layers[0]].shape[-1]
    counts = [f"{silent[name]} in `{name}`" for name in block.layers]
    last = block.maps[block.layers[-2]][0]
    means = np.sort(last.mean(axis=(0, 1)))[::-1][:strongest]
    return Markdown(
        f"Channels zero everywhere on the photo, of {channels}: " + ", ".join(counts[:-1]) + f" and {counts[-1]}. "
        f"The {strongest} strongest of `{block.layers[-2]}` have means from **{means[0]:.3g}** down to "
        f"**{means[-1]:.3g}**."
    )


def _names(names: list[str]) -> str:
    """`a`, `a` and `b`, `a`, `b` and `c`."""
    return _listed([f"`{name}`" for name in names])


@dataclass
class BlockCost:
    """`block_cost`'s result: the block's rows of the layer table and its totals."""

    table: NumberedTable
    params: int
    macs: int
    activation_bytes: int
    share_params: float  # of the convolutional base
    share_macs: float
    summary: Markdown


def block_cost(block: Block) -> BlockCost:
    """The block's parameters, multiply-accumulates and activation memory from the layer table, as a
    numbered table, with its share of the convolutional base and its costliest layer (block chapters; the
    time a block takes is measured once, by `compare_blocks`)."""
    rows = block.table.loc[block.layers]
    conv_base = block.table[block.table.index.str.startswith("block")]
    n = block.number
    table = layer_table_view(
        block.table,
        f"tab-block{n}-cost",
        f"Block {n}'s layers and their cost.",
        rows=block.layers,
    )
    params, macs, memory = (int(rows[c].sum()) for c in ("params", "macs", "activation_bytes"))
    share_params, share_macs = params / conv_base["params"].sum(), macs / conv_base["macs"].sum()
    costliest = list(rows.index[rows["macs"] == rows["macs"].max()])
    each = " each" if len(costliest) > 1 else ""
    layer_word = "layers" if len(costliest) > 1 else "layer"
    summary = Markdown(
        f"Block {n} holds **{share_params:.1%}** of the convolutional base's parameters and does "
        f"**{share_macs:.1%}** of its multiply-accumulates; its costliest {layer_word}, {_names(costliest)}, "
        f"{'do' if len(costliest) > 1 else 'does'}{each} **{rows['macs'].max() / macs:.0%}** of the block's."
    )
    return BlockCost(table, params, macs, memory, share_params, share_macs, summary)


def _share(value: float) -> str:
    """A share as a percentage with two significant digits: "95%", "2.7%", "0.072%"."""
    return f"{100 * value:.2g}%"


@dataclass
class UnitField:
    """`unit_field`'s result: the theoretical and the effective receptive field of one position of a layer."""

    layer: str
    row: int
    col: int
    box: tuple[int, int, int, int]  # (x0, y0, x1, y1), inclusive, clipped to the photo
    size: int  # the theoretical receptive field's side, px
    stride: int  # the distance between neighbouring positions, px
    channels: int  # the units at the position, one per channel, whose summed gradient `erf` is
    erf: np.ndarray  # |∂ (sum of the position's units) / ∂ pixel|, summed over colours, (224, 224)
    photo: np.ndarray

    @property
    def inside(self) -> int:
        """Pixels of the receptive field that lie inside the photo."""
        x0, y0, x1, y1 = self.box
        return (x1 - x0 + 1) * (y1 - y0 + 1)

    @property
    def effective(self) -> int:
        """The fewest pixels that hold 90% of the gradient: the effective receptive field's area."""
        mass = np.sort(self.erf.ravel())[::-1].cumsum()
        return int(np.searchsorted(mass, 0.9 * mass[-1]) + 1) if mass[-1] > 0 else 0

    @property
    def effective_mask(self) -> np.ndarray:
        """(224, 224) bool: the `effective` pixels with the largest gradient, which hold 90 % of it (ties at the
        threshold broken by position)."""
        mask = np.zeros(self.erf.size, bool)
        mask[np.argsort(-self.erf.ravel(), kind="stable")[: self.effective]] = True
        return mask.reshape(self.erf.shape)

    @property
    def photo_shares(self) -> tuple[float, float]:
        """The theoretical field beside the photo: its side over the photo's side, and its area (the part on
        the photo) over the photo's area."""
        height, width = self.photo.shape[:2]
        return self.size / max(height, width), self.inside / (height * width)

    def plot(self) -> Figure:
        """The photo with the position's box, beside the gradient, zoomed to a margin around the box."""
        fig, axes = plt.subplots(1, 2, figsize=(PAGE_WIDTH, 3.4), layout="constrained")
        axes[0].imshow(self.photo)
        side, area = (_share(v) for v in self.photo_shares)
        draw_box(axes[0], self.box, f"receptive field {self.size} px:\n{side} of the side,\n{area} of the area")
        axes[0].set_title(f"{self.layer}, position ({self.row}, {self.col})", fontsize=10)
        x0, y0, x1, y1 = self.box
        margin = max(self.size // 2, 12)
        top, bottom = max(y0 - margin, 0), min(y1 + margin + 1, self.erf.shape[0])
        left, right = max(x0 - margin, 0), min(x1 + margin + 1, self.erf.shape[1])
        crop = self.erf[top:bottom, left:right]
        shown = axes[1].imshow(
            crop / crop.max() if crop.max() > 0 else crop,
            cmap="magma",
            extent=(left - 0.5, right - 0.5, bottom - 0.5, top - 0.5),
        )
        draw_box(axes[1], self.box, colour="cyan")
        # the 90 % pixels are speckled where ReLUs and pools cut paths: outline them smoothed over a few pixels
        sigma = max(1.0, self.size / 50)
        mask = cv2.GaussianBlur(self.effective_mask.astype(np.float32), (0, 0), sigma)[top:bottom, left:right]
        if mask.max() > 0.5 > mask.min():
            axes[1].contour(
                mask,
                levels=[0.5],
                colors="lime",
                linewidths=1.2,
                extent=(left, right - 1, top, bottom - 1),
                origin="upper",
            )
        zoomed = ", zoomed" if crop.shape != self.erf.shape else ""
        axes[1].set_title(
            f"effective receptive field{zoomed}\n|∂ (sum of its {self.channels} units) / ∂ pixel|", fontsize=10
        )
        fig.colorbar(shown, ax=axes[1], shrink=0.8, label="share of the largest gradient")
        for ax in axes:
            ax.set_axis_off()
        return fig

    @property
    def summary(self) -> Markdown:
        x0, y0, x1, y1 = self.box
        clipped = (x1 - x0 + 1, y1 - y0 + 1) != (self.size, self.size)
        inside = f", {x1 - x0 + 1}×{y1 - y0 + 1} of them on the photo" if clipped else ""
        return Markdown(
            f"The box of position ({self.row}, {self.col}) of `{self.layer}` is **{self.size}×{self.size}** px"
            f"{inside}; 90 % of the gradient of its "
            f"{self.channels} units falls on **{self.effective:,}** of its "
            f"{self.inside:,} pixels on the photo (**{self.effective / self.inside:.0%}**)."
        )


def unit_field(block: Block, layer: str | None = None, row: int | None = None, col: int | None = None) -> UnitField:
    """One position of `layer` (default: the block's pool, at the centre of its map — just below and right
    of it for an even size): its receptive field from the layer table (Araujo et al. 2019), and its
    effective receptive field, the gradient of the sum of its units (one per channel) with respect to
    every input pixel (Luo et al. 2016) (block chapters)."""
    layer = block.layers[-1] if layer is None else layer
    if layer not in block.maps:
        raise ValueError(f"no map of layer {layer!r}; the chapter has {', '.join(block.maps)}")
    rows, cols, channels = block.maps[layer].shape[1:4]
    row = rows // 2 if row is None else row
    col = cols // 2 if col is None else col
    size, stride = (int(block.table.loc[layer, key]) for key in ("receptive_field", "stride"))
    box = receptive_field_box(block.table, layer, row, col, block.photo.shape[0])
    erf = block._once(
        ("erf", layer, row, col), lambda: effective_receptive_field(block.model, block.x, layer, row, col)
    )
    return UnitField(layer, row, col, box, size, stride, channels, erf, block.photo)


STAT_COLUMNS = {"zeros": "zeros", "mean": "mean", "std": "standard deviation", "max": "largest value"}


@dataclass
class ActivationStats:
    """`activation_stats`' result: per layer, the fraction of zeros, mean, standard deviation and largest
    value of its output on the photograph (`frame`, every conv and pool), and the block it belongs to."""

    frame: pd.DataFrame
    block: Block

    @property
    def table(self) -> NumberedTable:
        """The block's layers and the layer it reads, as a numbered table."""
        n = self.block.number
        names = self.block.layers if n == 1 else [self.block.input_name, *self.block.layers]
        shown = self.frame.loc[names].rename(columns=STAT_COLUMNS)
        shown.index.name = "layer"
        reads = "" if n == 1 else ", and its input's"
        return numbered_table(
            shown,
            f"tab-block{n}-stats",
            f"Block {n}'s activation statistics{reads}.",
            {"zeros": "{:.1%}", "mean": "{:.3g}", "standard deviation": "{:.3g}", "largest value": "{:.3g}"},
        )

    def plot(self) -> Figure:
        """Fraction of zeros and standard deviation of every layer, the block shaded."""
        stats, n = self.frame, self.block.number
        fig, ax = plt.subplots(figsize=(PAGE_WIDTH, 3.4), layout="constrained")
        ax.plot(stats.index, stats["zeros"], "o-", label="fraction of zeros")
        ax.set_ylim(0, 1)
        ax.set_ylabel("fraction of zeros")
        ax2 = ax.twinx()
        ax2.semilogy(stats.index, stats["std"], "s--", color="tab:orange", label="standard deviation")
        ax2.set_ylabel("standard deviation (log scale)")
        inside = [i for i, name in enumerate(stats.index) if name.startswith(f"block{n}_")]
        ax.axvspan(inside[0] - 0.5, inside[-1] + 0.5, color="grey", alpha=0.15)
        ax.tick_params(axis="x", rotation=90, labelsize=7)
        ax.set_title(f"Activation statistics of every layer on the photograph (block {n} shaded)", fontsize=10)
        fig.legend(loc="outside lower center", ncols=2, fontsize=9)
        return fig

    @property
    def summary(self) -> Markdown:
        n, stats = self.block.number, self.frame
        after = stats.loc[self.block.layers[-1]]
        text = (
            f"After block {n}, **{after['zeros']:.0%}** of the units are zero and their standard deviation is "
            f"**{after['std']:.3g}**"
        )
        if n == 1:
            text += f"; the preprocessed photo it reads has a standard deviation of {self.block.x.std():.3g}."
        else:
            before = stats.loc[self.block.input_name]
            ratio = after["std"] / before["std"]
            text += (
                f", against {before['zeros']:.0%} and {before['std']:.3g} after block {n - 1}: the block "
                f"{'multiplies' if ratio >= 1 else 'divides'} the scale by **{max(ratio, 1 / ratio):.2f}**."
            )
        return Markdown(text)


def activation_stats(block: Block) -> ActivationStats:
    """Fraction of zeros, mean, standard deviation and largest value of every conv and pool output on the
    photograph, from the maps of the chapter's one forward pass (block chapters)."""
    frame = pd.DataFrame(
        {
            name: {
                "zeros": float(np.mean(m == 0)),
                "mean": float(m.mean()),
                "std": float(m.std()),
                "max": float(m.max()),
            }
            for name, m in block.maps.items()
        }
    ).T
    return ActivationStats(frame, block)


def channel_examples(block: Block, layer: str | None = None, *, channels: int = 6, k: int = 6) -> DatasetExamples:
    """The `channels` channels of `layer` (default: the block's last convolution) strongest on the page's
    photo, each with the `k` patches that excite it most across the photo and scikit-image's gallery
    (`vggbook.GALLERY`), no two of one image overlapping: `vggbook.dataset_examples` on the page's photo
    and the gallery, the page's photo searched first (block chapters; block 1 explains the method)."""
    layer = block.layers[-2] if layer is None else layer
    if layer not in block.maps:
        raise ValueError(f"no map of layer {layer!r}; the chapter has {', '.join(block.maps)}")
    gallery = {name: sample_image(name) for name in GALLERY}
    same = [name for name, image in gallery.items() if np.array_equal(image, block.photo)]
    own = same[0] if same else block.photo_name  # the page's photo may be one of the gallery's
    photos = {own: block.photo} | {name: image for name, image in gallery.items() if name != own}
    ranked = rank_channels(block.maps[layer])[:channels]
    return dataset_examples(block.model, layer, ranked, photos, block.table, k=k)


# -- a block beside the one before, and all five side by side ----------------------------------------------


@dataclass
class BlockProfile:
    """What one block does with the photo, from the chapter's one forward pass and the layer table (the
    network's input for "block 0"): the maps its convolutions write, its receptive field and the part of
    it that holds 90 % of the gradient (at the centre of its pool's map), the zeros it outputs and its
    cost. No time: a block's time on a shared machine varied by up to 1.7x from one page's run to the
    next (block 3: 65 and 113 ms), more than between blocks, so the book compares counts, not seconds."""

    number: int  # 0: the network's input, the preprocessed photo
    side: int  # px of the maps its convolutions write (the input: the photo's)
    channels: int
    convolutions: int
    field: int  # receptive field of its pool (px)
    effective: int  # pixels holding 90 % of the gradient of the pool's centre position
    inside: int  # pixels of that field inside the photo
    zeros: float  # fraction of its output's units that are exactly zero
    params: int
    macs: int
    memory: int  # bytes of all its outputs, float32

    @property
    def label(self) -> str:
        return "input" if self.number == 0 else f"block {self.number}"

    @property
    def effective_share(self) -> float:
        return self.effective / self.inside


def _input_profile(block: Block) -> BlockProfile:
    side, channels = block.x.shape[1], block.x.shape[-1]
    zeros = float(np.mean(block.x == 0))
    return BlockProfile(0, side, channels, 0, 1, 1, 1, zeros, 0, 0, 4 * int(np.prod(block.x.shape[1:])))


def block_profile(block: Block, number: int) -> BlockProfile:
    """Block `number` (0 = the network's input) of the chapter's network on its photo (block chapters)."""
    if number == 0:
        return _input_profile(block)
    number = _block_number(number)

    def measure() -> BlockProfile:
        names = [layer.name for layer in block_layers(block.model, number)]
        rows = block.table.loc[names]
        pool = names[-1]
        centre = unit_field(block, pool)
        return BlockProfile(
            number=number,
            side=int(block.maps[names[0]].shape[1]),
            channels=int(block.maps[pool].shape[-1]),
            convolutions=len(names) - 1,
            field=centre.size,
            effective=centre.effective,
            inside=centre.inside,
            zeros=float(np.mean(block.maps[pool] == 0)),
            params=int(rows["params"].sum()),
            macs=int(rows["macs"].sum()),
            memory=int(rows["activation_bytes"].sum()),
        )

    return block._once(("profile", number), measure)


# One row per quantity: its label (with its unit) and how a profile shows it.
PROFILE_ROWS: dict[str, object] = {
    "map its convolutions write (px)": lambda p: f"{p.side}×{p.side}",
    "channels": lambda p: f"{p.channels:,}",
    "convolutions": lambda p: f"{p.convolutions}",
    "receptive field of its pool (px)": lambda p: f"{p.field}",
    "pixels holding 90 % of the gradient (share of the field)": lambda p: f"{p.effective:,} ({p.effective_share:.0%})",
    "units of its output that are zero": lambda p: f"{p.zeros:.1%}",
    "parameters": lambda p: f"{p.params:,}",
    "multiply-accumulates (millions)": lambda p: amount(round(p.macs / 1e6, 1)),
    "activation memory (MiB)": lambda p: f"{p.memory / 2**20:.2f}",
}


def _change(label: str, before: BlockProfile, after: BlockProfile) -> str:
    """How a quantity changed from one block to the next: a factor, or percentage points for a share."""
    if label == "units of its output that are zero":  # from the shares as shown (one decimal): it checks by subtraction
        points = round(round(100 * after.zeros, 1) - round(100 * before.zeros, 1), 1) + 0.0  # never "-0.0"
        sign = "+" if points > 0 else "−" if points < 0 else ""  # a true minus, as in the error row
        return f"{sign}{abs(points):.1f} point{'' if abs(points) == 1 else 's'}"
    values = {
        "map its convolutions write (px)": (before.side, after.side),
        "channels": (before.channels, after.channels),
        "convolutions": (before.convolutions, after.convolutions),
        "receptive field of its pool (px)": (before.field, after.field),
        "pixels holding 90 % of the gradient (share of the field)": (before.effective, after.effective),
        "parameters": (before.params, after.params),
        "multiply-accumulates (millions)": (before.macs, after.macs),
        "activation memory (MiB)": (before.memory, after.memory),
    }
    old, new = values[label]  # counts, or bytes shown to 0.01 MiB: a factor to 2 digits agrees with them
    if not old or math.isnan(old) or math.isnan(new):
        return "–"
    return f"×{new / old:.2g}"


def _two(value: float) -> str:
    """A correlation with two decimals, three where two would round it onto KEPT (`near_threshold`)."""
    return near_threshold(value, KEPT)


REBUILT = f"photo rebuilt from its pool in {STEPS} steps"  # the prefix of every reconstruction row
KEPT_ROWS = (
    f"{REBUILT}: correlation, finest detail (1 px band)",
    f"{REBUILT}: correlation, layout (coarsest band)",
    f"{REBUILT}: every band recovered from (px; recovered = correlation ≥ {{kept}})",
)
ERROR_ROW = (
    f"{REBUILT}: relative feature error of the start image → of the result (fall over the last {LATE_STEPS} steps)"
)


def _error(r: Reconstruction) -> str:
    """The search's relative feature error at its start and end, and how much it fell over its last steps."""
    return f"{r.start_error:.0%} → {r.feature_error:.1%} (−{r.late_drop:.0%})"


def _falling(recs: list[Reconstruction], missing: bool = True) -> str:
    """A sentence on whether the searches were still lowering the error when they stopped (`Reconstruction.settled`:
    a fall of more than SETTLED of its value over its last LATE_STEPS steps), its falls in the order of `recs`,
    which is the order the sentence before names the pools in; if one was, what it recovered is a lower bound,
    and if a band is `missing` (not recovered), the band is not shown to be lost (block chapters)."""
    drops = " and ".join(f"{r.late_drop:.0%}" for r in recs)
    steps = max(r.late_steps for r in recs)
    its, error, search = ("its", "error", "search") if len(recs) == 1 else ("their", "errors", "searches")
    over = f" Over {its} last {steps} steps the {error}"
    if all(r.settled for r in recs):
        return f"{over} fell by only {drops} of {its} value: the {search} had settled."
    unsettled = [r for r in recs if not r.settled]
    which = f"the {search}" if len(unsettled) == len(recs) else f"the search on `{unsettled[0].layer}`"
    blocks, keep, it = ("blocks", "keep", "they") if len(recs) > 1 else ("block", "keeps", "it")
    lost = f", not a measure of what {it} lost" if missing else ""
    return (
        f"{over} still fell by {drops} of {its} value: {which} had not settled, so what {recs[0].steps} steps "
        f"recovered is a lower bound on what the {blocks} {keep}{lost}."
    )


NEAR = 0.05  # a band this close to KEPT may change its verdict with the search's random start: block 3's 4 px band
# read 0.49-0.57 over seeds 0-5 (second review of the block chapters), a spread of about ±0.04


def _distance(value: float) -> str:
    """How far a correlation lies from KEPT, from the value as shown (`_two`), so that it checks by subtraction."""
    shown = _two(value)
    places = len(shown.split(".")[1])
    gap = round(float(shown) - KEPT, places) + 0.0
    return f"{abs(gap):.{places}f} {'above' if gap >= 0 else 'below'}"


def _near(recs: list[Reconstruction]) -> str:
    """The bands within NEAR of the rule KEPT, each with its correlation (to the digits that place it on the
    rule's side, `near_threshold`) and its distance from the rule: a verdict there could change with the
    search's random start (block chapters)."""
    close = [
        f"the {scale} px band from `{r.layer}` ({_two(value)}, {_distance(value)} the rule's {KEPT})"
        for r in recs
        for scale, value in r.kept.items()
        if abs(value - KEPT) < NEAR
    ]
    if not close:
        return ""
    one = len(close) == 1
    return (
        f" Within {NEAR} of the rule {'lies' if one else 'lie'} {_listed(close)}: "
        f"{'a verdict' if one else 'verdicts'} this close to the line could change with another random start "
        "of the search."
    )


def _listed(items: list[str]) -> str:
    """a, a and b, a, b and c."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


ANYTHING = 0.1  # the ordering clause compares only bands where either search's correlation reaches this


def _at_least(before: Reconstruction, after: Reconstruction) -> bool:
    """Whether the search on the earlier pool recovered at least as much of the photo at every band where
    either search's correlation is ANYTHING or more: bands where both are near zero are
    noise and do not decide it."""
    shared = (before.kept >= ANYTHING) | (after.kept >= ANYTHING)
    return bool((before.kept[shared] >= after.kept[shared]).all())


WHERE = f"At every band where either search's correlation with the photo is {ANYTHING} or more"


def _ordering(before: Reconstruction, after: Reconstruction) -> str:
    """The comparison of two pools' searches that does not hang on the rule: the earlier recovered at least as
    much at every band (said only where it holds)."""
    if not _at_least(before, after):
        return ""
    return (
        f" {WHERE}, the search on `{before.layer}` recovered at least as much as the one "
        f"on `{after.layer}` (a higher or equal correlation)."
    )


def _rebuilt_rows(recs: list[Reconstruction | None], index: pd.Index) -> dict[str, list[str]]:
    """The rows the side-by-side tables give the photo rebuilt from each pool (None: the photo itself, which
    keeps every band): its correlation with the photo in the finest band and in the coarsest (the layout), the
    finest scale from which every band is kept, and the search's start and end errors (ERROR_ROW)."""
    kept = [pd.Series(1.0, index=index) if r is None else r.kept for r in recs]
    fine, rest, scale = KEPT_ROWS
    return {
        fine: [_two(k.iloc[0]) for k in kept],
        rest: [_two(k.iloc[-1]) for k in kept],
        scale.format(kept=KEPT): ["none" if (f := BlockKeeps.finest(k)) is None else f"{f}" for k in kept],
        ERROR_ROW: ["–" if r is None else _error(r) for r in recs],
    }


def _factor(ratio: float) -> str:
    """A ratio as words before a noun: "twice the", "the same", "a quarter of the", "6.7 times the"."""
    words = {1: "the same", 2: "twice the", 0.5: "half the", 4: "four times the", 0.25: "a quarter of the"}
    for value, word in words.items():
        if math.isclose(ratio, value, rel_tol=0.01):
            return word
    return f"{ratio:.2g} times the" if ratio >= 1 else f"{ratio:.0%} of the"


@dataclass
class BlockComparison:
    """`compare_blocks`' result: the block and the one before it (for block 1, the network's input)."""

    before: BlockProfile
    after: BlockProfile
    keeps: BlockKeeps | None = None  # the photo rebuilt from the two pools (block 1: from its pool)

    def kept(self) -> tuple[pd.Series, pd.Series] | None:
        """What the photo rebuilt from each block's pool keeps of it, per scale (the input: all of it)."""
        if self.keeps is None:
            return None
        after = self.keeps.after.kept
        before = self.keeps.before.kept if self.keeps.before is not None else pd.Series(1.0, index=after.index)
        return before, after

    @property
    def frame(self) -> pd.DataFrame:
        b, a = self.before, self.after
        columns = {
            b.label: [show(b) for show in PROFILE_ROWS.values()],
            a.label: [show(a) for show in PROFILE_ROWS.values()],
            "change": [_change(label, b, a) for label in PROFILE_ROWS],
        }
        rows = list(PROFILE_ROWS)
        if (kept := self.kept()) is not None:
            # no change for these rows: two searches on two different layers, not one quantity that grew
            made = _rebuilt_rows([self.keeps.before, self.keeps.after], kept[1].index)
            for label, (before, after) in made.items():
                rows.append(label)
                columns[b.label].append(before)
                columns[a.label].append(after)
                columns["change"].append("–")
        return pd.DataFrame(columns, index=pd.Index(rows, name="on the photo"))

    @property
    def table(self) -> NumberedTable:
        b, a = self.before, self.after
        what = "the photograph" if b.number == 0 else f"block {b.number}"
        return numbered_table(self.frame, f"tab-block{a.number}-adds", f"Block {a.number} beside {what}, measured.")

    @property
    def summary(self) -> Markdown:
        b, a = self.before, self.after
        n = a.number
        if b.number == 0:
            return Markdown(
                f"Block 1 turns the {b.side}×{b.side}×{b.channels} photo into {a.channels} maps of the same size "
                f"and pools them to half the side; one position of its pool sees a **{a.field}×{a.field}** "
                f"pixel window, of which **{a.effective}** pixels hold 90 % of the gradient. "
                f"**{a.zeros:.0%}** of its output is zero." + self._kept_sentence()
            )
        sentences = []
        channels = (
            f"the same {a.channels} channels"
            if a.channels == b.channels
            else f"{_factor(a.channels / b.channels)} channels ({a.channels} against {b.channels})"
        )
        convolutions = (
            f"{a.convolutions} convolutions where block {b.number} has {b.convolutions}"
            if a.convolutions != b.convolutions
            else f"as many convolutions ({a.convolutions})"
        )
        sentences.append(
            f"Block {n} works on a {a.side}×{a.side} map, {_factor(a.side / b.side)} side of block {b.number}'s, "
            f"with {channels} and {convolutions}."
        )
        grows = "widens" if a.field > b.field else "stays"
        clipped = ", more than the photo holds around its centre" if a.inside < a.field**2 else ""
        share = (
            "a smaller share"
            if a.effective_share < b.effective_share
            else "a larger share"
            if a.effective_share > b.effective_share
            else "the same share"
        )
        sentences.append(
            f"The receptive field of its pool {grows} from {b.field} to **{a.field}** px{clipped}; the pixels "
            f"holding 90 % of the gradient go from {b.effective:,} to **{a.effective:,}**, {share} of the field "
            f"({a.effective_share:.0%} against {b.effective_share:.0%})."
        )
        costs = {
            "parameters": a.params / b.params,
            "multiply-accumulates": a.macs / b.macs,
            "activation memory": a.memory / b.memory,
        }
        ordered = sorted(costs.items(), key=lambda item: -abs(math.log(item[1])))  # the largest change first
        sentences.append(
            f"Against block {b.number} it has {', '.join(f'{_factor(r)} {what}' for what, r in ordered[:-1])} "
            f"and {_factor(ordered[-1][1])} {ordered[-1][0]}."
        )
        more = "more" if a.zeros > b.zeros else "fewer" if a.zeros < b.zeros else "as many"
        sentences.append(
            f"**{a.zeros:.0%}** of its output is zero: {more} than the {b.zeros:.0%} of block {b.number}'s."
        )
        return Markdown(" ".join(sentences) + self._kept_sentence())

    def _kept_sentence(self) -> str:
        if (kept := self.kept()) is None:
            return ""
        before, after = (BlockKeeps.finest(k) for k in kept)
        rule = f"(a band counts as recovered where it correlates {KEPT} or more with the photo's)"
        n, m = self.after.number, self.before.number
        steps = self.keeps.after.steps
        recs = [self.keeps.after] if self.keeps.before is None else [self.keeps.before, self.keeps.after]
        missing = before is None or after is None or before > 1 or after > 1
        neither = m > 0 and before is None and after is None  # the sentence names block m first, else block n
        late = _falling(recs if neither else recs[::-1], missing=missing)
        if len(recs) == 2:
            late += _ordering(*recs)
        late += _near(recs)
        if neither:
            return (
                f" In {steps} steps, neither the search on block {m}'s pool nor the one on block {n}'s recovered "
                f"the photo's coarsest band, the layout {rule}." + late
            )
        no_layout = "not even the photo's coarsest band, the layout"
        got = no_layout if after is None else f"every band of the photo from **{after} px** up"
        text = f" In {steps} steps, the search on block {n}'s pool recovered {got}"
        if m > 0:
            text += f"; the search on block {m}'s pool recovered " + (
                no_layout if before is None else f"every band from {before} px up"
            )
        return text + f" {rule}." + late


def compare_blocks(block: Block, *, rebuild: bool = True) -> BlockComparison:
    """The chapter's block beside the one before it (block 1: beside the photo it reads), each measured on
    the chapter's photo from its one forward pass and the layer table: map size, channels, receptive field
    and its effective part, zeros, parameters, multiply-accumulates, time and activation memory; with
    `rebuild`, also what the photo rebuilt from each pool keeps of it (`what_it_keeps`, made once per
    chapter) (block chapters; block 1 explains each row)."""
    keeps = what_it_keeps(block) if rebuild else None
    return BlockComparison(block_profile(block, block.number - 1), block_profile(block, block.number), keeps)


def _trend(values: list[float], plural: bool = False) -> str:
    """How a quantity goes over the blocks: "rises at every block", "falls at every block" ("rise", "fall"
    for a plural subject), or "" when it does not move one way all along."""
    steps = np.diff(values)
    ending = "" if plural else "s"
    if np.all(steps > 0):
        return f"rise{ending} at every block"
    if np.all(steps < 0):
        return f"fall{ending} at every block"
    return ""


@dataclass
class AllBlocks:
    """`compare_all`'s result: the five blocks of the chapter's network, side by side."""

    profiles: list[BlockProfile]  # blocks 1–5
    rebuilt: list[Reconstruction] | None = None  # the photo rebuilt from each block's pool, blocks 1–5

    @property
    def frame(self) -> pd.DataFrame:
        frame = pd.DataFrame(
            {p.label: [show(p) for show in PROFILE_ROWS.values()] for p in self.profiles},
            index=pd.Index(list(PROFILE_ROWS), name="on the photo"),
        )
        if self.rebuilt is not None:
            rows = _rebuilt_rows(self.rebuilt, self.rebuilt[0].kept.index)
            kept = pd.DataFrame(rows, index=frame.columns).T
            frame = pd.concat([frame, kept.rename_axis(frame.index.name)])
        return frame

    def plot_rebuilt(self) -> Figure:
        """The photo and its reconstructions from the five pools, and what each keeps at each scale."""
        if self.rebuilt is None:
            raise ValueError("made without the reconstructions: use vggbook.compare_all(block, rebuild=True)")
        return plot_reconstructions(self.rebuilt, kept_at=KEPT)

    def table(self, name: str = "tab-block5-all") -> NumberedTable:
        return numbered_table(
            self.frame,
            name,
            "The five blocks side by side, measured.",
        )

    def plot(self) -> Figure:
        """Left: sizes and costs relative to block 1 (log scale). Right: the shares (zeros, effective part of
        the field)."""
        p = self.profiles
        blocks = [q.number for q in p]
        fig, (left, right) = plt.subplots(1, 2, figsize=(PAGE_WIDTH, 4.2), layout="constrained")
        series = {
            "map side": [q.side for q in p],
            "channels": [q.channels for q in p],
            "receptive field (its area on the photo)": [q.inside for q in p],
            "pixels with 90 % of the gradient": [q.effective for q in p],
            "parameters": [q.params for q in p],
            "multiply-accumulates": [q.macs for q in p],
            "activation memory": [q.memory for q in p],
        }
        for (label, values), marker in zip(series.items(), "osD^v<>", strict=True):
            left.semilogy(blocks, np.asarray(values, float) / values[0], marker=marker, label=label)
        left.axhline(1, color="grey", lw=0.8, ls=":")
        left.set_xticks(blocks)
        left.set_xlabel("block")
        left.set_ylabel("relative to block 1 (log scale)")
        left.set_title("Sizes and costs", fontsize=10)
        # below the panels, not over the lines: seven series would hide the left panel's data
        fig.legend(*left.get_legend_handles_labels(), loc="outside lower left", ncols=2, fontsize=8)
        right.plot(blocks, [q.zeros for q in p], "o-", label="output units that are zero")
        right.plot(blocks, [q.effective_share for q in p], "s--", label="share of the field\nwith 90 % of the gradient")
        right.set_ylim(0, 1)
        right.set_xticks(blocks)
        right.set_xlabel("block")
        right.yaxis.set_major_formatter(plt.matplotlib.ticker.PercentFormatter(1.0))
        right.set_title("Shares, on the photo", fontsize=10)
        fig.legend(*right.get_legend_handles_labels(), loc="outside lower right", fontsize=8)
        fig.suptitle("VGG16's five blocks side by side", fontsize=10)
        return fig

    @property
    def summary(self) -> Markdown:
        p = self.profiles
        first, last = p[0], p[-1]
        sentences = []
        sides = [q.side for q in p]
        channels = [q.channels for q in p]
        halving = all(b == a // 2 for a, b in zip(sides, sides[1:], strict=False))
        doubling = [q.number for a, q in zip(p, p[1:], strict=False) if q.channels == 2 * a.channels]
        kept = [q.number for a, q in zip(p, p[1:], strict=False) if q.channels == a.channels]
        side_words = "halves at every block" if halving else "shrinks"
        channel_words = (
            f"double in block{'s' if len(doubling) > 1 else ''} {', '.join(map(str, doubling))}"
            if doubling
            else "never double"
        )
        if kept:
            channel_words += (
                f" and stay at {channels[kept[0] - 1]} in block{'s' if len(kept) > 1 else ''} "
                + ", ".join(map(str, kept))
            )
        sentences.append(
            f"The map the convolutions write {side_words}, from {sides[0]}×{sides[0]} to {sides[-1]}×{sides[-1]}, "
            f"while the channels {channel_words}."
        )
        fields = [q.field for q in p]
        shares = [q.effective_share for q in p]
        share_trend = _trend(shares)
        whole = all(q.inside == q.field**2 for q in (first, last))  # the field wholly on the photo: its area
        on_photo = f"(from {first.inside:,} to {last.inside:,} px on the photo)"
        area = f"({fields[-1]}² / {fields[0]}²)" if whole else on_photo
        sentences.append(
            f"The receptive field's side grows {fields[-1] / fields[0]:.0f}-fold, from {fields[0]} to {fields[-1]} px, "
            f"and its area {last.inside / first.inside:,.0f}-fold {area}; the pixels holding 90 % of the gradient "
            f"grow {last.effective / first.effective:,.0f}-fold, from {first.effective:,} to {last.effective:,}: "
            f"their share of the field goes from {shares[0]:.0%} in block 1 to {shares[-1]:.0%} in block 5"
            + (f" and {share_trend}" if share_trend else ", not one way at every block")
            + "."
        )
        zeros = [q.zeros for q in p]
        most = int(np.argmax(zeros))
        zero_trend = _trend(zeros) or f"is largest after block {most + 1} ({zeros[most]:.0%})"
        sentences.append(
            f"The share of zeros in a block's output {zero_trend}: {zeros[0]:.0%} after block 1, "
            f"{zeros[-1]:.0%} after block 5."
        )
        params = np.array([q.params for q in p], float)
        macs = np.array([q.macs for q in p], float)
        memory = np.array([q.memory for q in p], float)
        peak = [q.number for q in p if q.macs == macs.max()]
        peak_words = (
            f"peak in blocks {' and '.join(map(str, peak))}, tied" if len(peak) > 1 else f"peak in block {peak[0]}"
        )
        sentences.append(
            f"Parameters {_trend(list(params), plural=True) or 'vary'}, and block 5 holds "
            f"{params[-1] / params.sum():.0%} of the convolutional base's; multiply-accumulates {peak_words} at "
            f"{macs.max() / 1e9:.2f} G; activation memory "
            f"{_trend(list(memory)) or 'varies'}, from {memory[0] / 2**20:.2f} to {memory[-1] / 2**20:.2f} MiB."
        )
        if self.rebuilt is not None:
            sentences.append(self._kept_sentence())
        return Markdown(" ".join(sentences))

    def _kept_sentence(self) -> str:
        """What the photo rebuilt from each pool keeps, and how that goes over the blocks."""
        kept = [r.kept for r in self.rebuilt]
        finest = [BlockKeeps.finest(k) for k in kept]
        shown = ", ".join("none" if f is None else f"{f} px" for f in finest)
        scales = [2**30 if f is None else f for f in finest]  # none kept: coarser than any scale
        steps = np.diff(scales)
        if np.all(steps > 0):
            trend = "coarsens at every block"
        elif np.all(steps >= 0):
            trend = "never gets finer from one block to the next"
        else:
            trend = f"is coarsest after block {int(np.argmax(scales)) + 1}"
        layout = [k.iloc[-1] for k in kept]
        detail = [k.iloc[0] for k in kept]
        layout_trend = _trend(layout)
        drops = [r.late_drop for r in self.rebuilt]
        steps = self.rebuilt[0].steps
        late = max(r.late_steps for r in self.rebuilt)
        unsettled = sum(not r.settled for r in self.rebuilt)
        if unsettled == 0:
            settled = (
                f"All five searches had settled (their errors fell by at most {max(drops):.0%} over their last "
                f"{late} steps)."
            )
        else:
            which = (
                "None of the five searches"
                if unsettled == len(drops)
                else f"{len(drops) - unsettled} of the five searches"
            )
            settled = (
                f"{which} had settled in {steps} steps: over their last {late} steps the errors still fell by "
                f"{min(drops):.0%} to {max(drops):.0%} of their value, so these are what each search recovered in its "
                "budget, a lower bound, not all that each block keeps."
            )
        pairs = list(zip(self.rebuilt, self.rebuilt[1:], strict=False))
        holds = [int(b.layer[5]) for a, b in pairs if _at_least(a, b)]
        if len(holds) == len(pairs):
            settled += f" {WHERE}, each block's search recovered at least as much as the next block's."
        elif holds:
            done = [f"{n - 1} → {n}" for n in holds]
            others = [f"{int(a.layer[5])} → {int(b.layer[5])}" for a, b in pairs if int(b.layer[5]) not in holds]
            settled += (
                f" {WHERE}, the search on a block's pool recovered at least as much as the one "
                f"on the next block's for blocks {_listed(done)}; not for {_listed(others)}."
            )
        settled += _near(self.rebuilt)
        return (
            f"The finest scale from which the search on a block's pool recovered every band {trend} "
            f"(blocks 1–5: {shown}). The rebuilt photo's correlation with the photo goes from {_two(detail[0])} after "
            f"block 1 to {_two(detail[-1])} after block 5 in the finest detail, and from {_two(layout[0])} to "
            f"{_two(layout[-1])} in the layout"
            + (f"; the layout's correlation {layout_trend}. " if layout_trend else ". ")
            + settled
            + " The relative feature errors of the last row are not comparable across blocks: each is measured on "
            "its own layer's output, a different set of features on a different scale."
        )


def compare_all(block: Block, *, rebuild: bool = False) -> AllBlocks:
    """The five blocks of the chapter's network side by side, each measured as `compare_blocks` measures
    one; with `rebuild`, also what the photo rebuilt from each pool keeps of it (`rebuilt`, the same search
    as in the pool's own chapter; the chapter's pair is reused) (chapter "block5")."""
    made = [rebuilt(block, n) for n in BLOCKS] if rebuild else None
    return AllBlocks([block_profile(block, number) for number in BLOCKS], made)


# -- what the block keeps of the photo ------------------------------------------------------------------------

KEPT = 0.5  # a band of the photo counts as recovered where the reconstruction correlates with it at least this much


@dataclass
class BlockKeeps:
    """`what_it_keeps`' result: the photo reconstructed from the block's pool and, beside it, from the pool of
    the block before (block 1: its pool alone), with what each search recovered of the photo at each scale."""

    number: int
    reconstructions: list[Reconstruction]  # the block before's (if any), then the block's

    @property
    def after(self) -> Reconstruction:
        return self.reconstructions[-1]

    @property
    def before(self) -> Reconstruction | None:
        return self.reconstructions[0] if len(self.reconstructions) > 1 else None

    def plot(self) -> Figure:
        return plot_reconstructions(self.reconstructions, kept_at=KEPT)

    @property
    def table(self) -> NumberedTable:
        n = self.number
        beside = "" if self.before is None else f", beside block {n - 1}'s"
        return reconstruction_table(
            self.reconstructions,
            f"tab-block{n}-keeps",
            f"What the search recovered from block {n}'s pool{beside}.",
            KEPT,
        )

    @staticmethod
    def finest(kept: pd.Series) -> int | None:
        """The finest scale (px) from which on every band is recovered (correlation ≥ KEPT), or None."""
        found = None
        for scale, value in kept[::-1].items():  # from the coarsest band down
            if not value >= KEPT:
                break
            found = int(scale)
        return found

    @property
    def summary(self) -> Markdown:
        a, b = self.after, self.before
        kept = a.kept
        fine, rest = kept.index[0], kept.index[-1]
        text = (
            f"Rebuilt from `{a.layer}`, the photo's finest band ({fine} px) correlates "
            f"**{_two(kept[fine])}** with the photo's and its layout **{_two(kept[rest])}**"
        )
        # whether each search settled is said here, beside its numbers (`_falling`); block 1 also says what
        # "recovered" means for every block chapter (`caveat`)
        if b is None:
            return Markdown(text + "." + self.caveat + _near([a]))
        was = b.kept
        missing = not all((r.kept >= KEPT).all() for r in (b, a))
        return Markdown(
            text
            + f", against {_two(was[fine])} and {_two(was[rest])} from `{b.layer}`."
            + _falling([a, b], missing=missing)  # the sentence names `a.layer` first
            + _ordering(b, a)
            + _near([b, a])
        )

    @property
    def caveat(self) -> str:
        """Whether the search on the block's pool had settled when it stopped, and if not, what the block
        chapters' "recovered" means: what a search of STEPS steps found, not all the block keeps (block 1)."""
        a = self.after
        text = _falling([a], missing=not (a.kept >= KEPT).all())
        if a.settled:
            return text
        return text + (
            f" So the block chapters say what a search of {a.steps} steps *recovered* from a block's pool, not what "
            "the block keeps: a band it did not recover may be in the block's output all the same."
        )


REBUILD_SEED = 0  # the noise every pool's search starts from: a chapter's two searches differ only in the block


def rebuilt(block: Block, number: int) -> Reconstruction:
    """The photo reconstructed from block `number`'s pool, made once per chapter: its own `invert` call, from
    the same seeded start (REBUILD_SEED) for every pool, so that a chapter's two searches differ only in the
    block, and whichever chapter asks for a pool (block n's, as the block before, in chapter n + 1; all five in
    block 5's) gets the same search and the same numbers to the last digit. One call
    per pool costs what a batched call does (image i of a batch stops at its own pool, `invert`), but a batch's
    float rounding, amplified by Adam's per-number step, moved the image by grey levels (block chapters)."""
    layer = f"block{_block_number(number)}_pool"
    return block._once(("keeps", layer), lambda: invert(block.model, block.photo, layer, seed=REBUILD_SEED))


def what_it_keeps(block: Block) -> BlockKeeps:
    """The photo reconstructed by feature inversion (Mahendran & Vedaldi 2015, `vggbook.invert`) from the
    block's pool and from the pool of the block before, each searched on its own (`rebuilt`), on the chapter's
    network and photo; made once per chapter (block chapters; block 1 explains the method)."""
    n = block.number
    return BlockKeeps(n, [rebuilt(block, m) for m in ([n] if n == 1 else [n - 1, n])])


@dataclass
class BandGrid:
    """`band_grid`'s result: the px between neighbouring positions of a layer (its effective stride), the
    stripes each band of the Laplacian pyramid holds (`band_periods`), and which bands hold only stripes
    shorter than two positions (`finer`) or straddle that period (`straddling`)."""

    layer: str
    apart: int
    bands: pd.DataFrame

    @property
    def period(self) -> int:
        """The shortest period the layer's grid has two positions in."""
        return 2 * self.apart

    @property
    def spacing(self) -> str:
        """The sentence that gives the grid's spacing and the shortest period it has two positions in."""
        return (
            f"Neighbouring positions of `{self.layer}` are {self.apart} px of the photo apart, so its grid has "
            f"two positions per period only for stripes of {self.period} px or more."
        )

    @property
    def finer(self) -> pd.DataFrame:
        return self.bands[self.bands["to (px)"] < self.period]

    @property
    def straddling(self) -> pd.DataFrame:
        b = self.bands
        return b[(b["from (px)"] < self.period) & (b["to (px)"] >= self.period)]

    @property
    def summary(self) -> Markdown:
        """`spacing`, then which bands hold stripes shorter than that period, straddle it, or hold longer ones."""

        def periods(rows: pd.DataFrame) -> str:
            return f"periods {rows['from (px)'].min()}–{rows['to (px)'].max()} px"

        def bands(rows: pd.DataFrame) -> str:
            names = [f"{s}" for s in rows.index]
            listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
            return f"the {listed} px band{'s' * (len(names) > 1)} ({periods(rows)})"

        def verb(rows: pd.DataFrame, singular: str, plural: str) -> str:
            return singular if len(rows) == 1 else plural

        parts = []
        if len(finer := self.finer):
            parts.append(f"{bands(finer)} {verb(finer, 'holds', 'hold')} only shorter stripes")
        if len(across := self.straddling):
            parts.append(f"{bands(across)} {verb(across, 'straddles', 'straddle')} that period")
        longer = self.bands[self.bands["from (px)"] >= self.period]
        if len(longer):
            parts.append(f"{bands(longer)} {verb(longer, 'holds', 'hold')} only longer stripes")
        text = "; ".join(parts)
        return Markdown(f"{self.spacing} {text[0].upper()}{text[1:]}.")


def band_grid(block: Block, layer: str | None = None) -> BandGrid:
    """The bands of the reconstruction's Laplacian pyramid beside the grid of `layer` (default: the block's
    pool): which hold stripes finer than two of its positions can sample (block chapters 1 and 4)."""
    layer = block.layers[-1] if layer is None else layer
    if layer not in block.table.index:
        raise ValueError(f"no layer {layer!r} in the layer table")
    return BandGrid(layer, int(block.table.loc[layer, "stride"]), band_periods())
