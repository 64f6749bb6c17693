"""What the five block chapters share, one call per idea (chapters "block1" … "block5").

A block chapter opens the network and the photograph once (`open_block`), writes its block's Keras lines
out on the page and checks them against the helper's (`check_block`), and then asks this module for the
sections every block chapter has: what the block costs (`block_cost`), what one unit sees (`unit_field`)
and how its numbers are distributed (`activation_stats`). What is particular to a block stays on its page.
Each result offers its table, its figure (`.plot()`) and a sentence of its numbers (`.summary`, Markdown
that the chapters show in a cell whose code the site hides).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import keras
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Markdown
from matplotlib.figure import Figure

from vggbook.architecture import block_layers, build_vgg16, layer_table
from vggbook.features import feature_maps
from vggbook.images import preprocess, sample_image
from vggbook.interpret import effective_receptive_field
from vggbook.plotting import PAGE_WIDTH, NumberedTable, draw_box, layer_table_view, numbered_table, receptive_field_box
from vggbook.weights import describe_weights

__all__ = ["Block", "activation_stats", "block_cost", "check_block", "open_block", "unit_field"]

BLOCKS = range(1, 6)
TIMING_RUNS = 5  # the block's time is the median of this many runs, after one warm-up run


@dataclass
class Block:
    """One block chapter's shared state, made once by `open_block`: VGG16's convolutional base, the
    photograph (RGB uint8) and its preprocessed batch `x`, every conv and pool output from one forward
    pass, and the layer table (block chapters)."""

    number: int
    model: keras.Model
    photo: np.ndarray
    x: np.ndarray
    maps: dict[str, np.ndarray]
    table: pd.DataFrame

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


def _block_number(number: int) -> int:
    if not isinstance(number, int | np.integer) or number not in BLOCKS:
        raise ValueError(f"VGG16 has blocks 1–5, not {number!r}")
    return int(number)


def open_block(number: int, photo: str | np.ndarray = "chelsea", *, weights: str = "auto") -> Block:
    """Build VGG16's convolutional base (`include_top=False`: no block chapter reads the fully connected
    head), print which weights it carries, load the photograph (a sample name or an RGB array), run ONE
    forward pass for every conv and pool output, and make the layer table (block chapters)."""
    number = _block_number(number)
    model = build_vgg16(include_top=False, weights=weights)
    print(describe_weights(model))
    image = sample_image(photo) if isinstance(photo, str) else np.asarray(photo)
    if image.shape != (224, 224, 3) or image.dtype != np.uint8:
        raise ValueError(f"the photo must be RGB uint8 of shape (224, 224, 3), got {image.dtype} {image.shape}")
    x = preprocess(image)
    return Block(number, model, image, x, feature_maps(model, x), layer_table(model))


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
    print(
        f"the {len(written)} layers written out are the helper's block {block.number}: same settings, and "
        f"with its weights the same output (largest difference {np.abs(out - expected).max():.1e})"
    )
    return block_model


def _median_seconds(run, repeats: int = TIMING_RUNS) -> float:
    run()  # warm-up: the first call traces the model
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


@dataclass
class BlockCost:
    """`block_cost`'s result: the block's rows of the layer table, its totals and its measured time."""

    table: NumberedTable
    params: int
    macs: int
    activation_bytes: int
    share_params: float  # of the convolutional base
    share_macs: float
    seconds: float
    summary: Markdown


def block_cost(block: Block, block_model: keras.Model) -> BlockCost:
    """The block's parameters, multiply-accumulates and activation memory from the layer table, as a
    numbered table, and its run time on this machine (median of 5 runs of the block alone on its input)
    (block chapters)."""
    rows = block.table.loc[block.layers]
    conv_base = block.table[block.table.index.str.startswith("block")]
    n = block.number
    table = layer_table_view(
        block.table,
        f"tab-block{n}-cost",
        f"The layers of block {n} for one 224×224 photograph: output shape, parameters, multiply-accumulates "
        "(MACs), receptive field and effective stride, and the memory of the output in float32.",
        rows=block.layers,
    )
    params, macs, memory = (int(rows[c].sum()) for c in ("params", "macs", "activation_bytes"))
    share_params, share_macs = params / conv_base["params"].sum(), macs / conv_base["macs"].sum()
    seconds = _median_seconds(lambda: block_model(block.input, training=False))
    summary = Markdown(
        f"Block {n} has **{params:,}** parameters ({share_params:.1%} of the {int(conv_base['params'].sum()):,} "
        f"of VGG16's convolutional base), does **{macs / 1e9:.2f} G** multiply-accumulates for one photograph "
        f"({share_macs:.1%} of the convolutional base's {conv_base['macs'].sum() / 1e9:.2f} G) and writes "
        f"**{memory / 2**20:.1f} MiB** of activations ({memory / conv_base['activation_bytes'].sum():.0%} of the "
        f"convolutional base's). On this machine it runs in **{seconds * 1000:.0f} ms** "
        f"(median of {TIMING_RUNS} runs)."
    )
    return BlockCost(table, params, macs, memory, share_params, share_macs, seconds, summary)


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

    def plot(self) -> Figure:
        """The photo with the position's box, beside the gradient, zoomed to a margin around the box."""
        fig, axes = plt.subplots(1, 2, figsize=(PAGE_WIDTH, 3.4), layout="constrained")
        axes[0].imshow(self.photo)
        draw_box(axes[0], self.box, f"receptive field {self.size} px")
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
        inside = f", of which {x1 - x0 + 1}×{y1 - y0 + 1} lie inside the photo" if clipped else ""
        share = self.effective / self.inside
        return Markdown(
            f"The receptive field of position ({self.row}, {self.col}) of `{self.layer}` is "
            f"**{self.size}×{self.size}** pixels{inside}, and neighbouring positions are **{self.stride}** pixels "
            f"apart. 90% of the gradient of the sum of its {self.channels} units comes from "
            f"**{self.effective:,}** pixels: "
            f"**{share:.0%}** of the field's {self.inside:,} pixels inside the photo"
            + (", so the effective field is much smaller than the theoretical one." if share < 0.5 else ".")
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
    erf = effective_receptive_field(block.model, block.x, layer, row, col)
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
        reads = "" if n == 1 else f" and of its input, `{self.block.input_name}`"
        return numbered_table(
            shown,
            f"tab-block{n}-stats",
            f"Activation statistics of block {n}'s layers{reads}, on the photograph: the fraction of the units "
            "that are exactly zero, their mean, standard deviation and largest value.",
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
