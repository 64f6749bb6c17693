"""Figures and tables: feature-map montages (one image per layer), filters, receptive-field boxes,
heat-map overlays, the architecture drawing, numbered tables. Each function names the chapter that uses it."""

from __future__ import annotations

import math

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure, SubFigure
from matplotlib.patches import Polygon, Rectangle
from skimage.util import montage

from vggbook.architecture import VGG_CONFIGS, parse_conv
from vggbook.images import CAFFE_MEAN_BGR, preprocess

BLOCK_COLOURS = ("#4c72b0", "#55a868", "#c44e52", "#8172b2", "#ccb974")
# Width of the site's text column in inches at Matplotlib's 100 dpi (688 px): a figure this wide is shown
# at its own size, so its 8–10 pt labels stay 8–10 pt. Every figure of the book is at most this wide.
PAGE_WIDTH = 6.9


def _figure(fig: Figure | SubFigure | None, figsize: tuple[float, float]) -> Figure | SubFigure:
    """`fig` itself (a figure, or a panel of one made with `fig.subfigures`), else a new figure."""
    return fig if fig is not None else plt.figure(figsize=figsize, layout="compressed")


def _channels_last(fmap: np.ndarray) -> np.ndarray:
    fmap = np.asarray(fmap)
    if fmap.ndim == 4:
        if fmap.shape[0] != 1:
            raise ValueError(f"expected one image's map, got a batch of {fmap.shape[0]}")
        fmap = fmap[0]
    if fmap.ndim != 3:
        raise ValueError(f"expected a feature map (H, W, C) or (1, H, W, C), got shape {fmap.shape}")
    return fmap


def rank_channels(fmap: np.ndarray) -> np.ndarray:
    """Channel indices from the strongest mean activation to the weakest (block chapters)."""
    fmap = _channels_last(fmap)
    return np.argsort(-fmap.mean(axis=(0, 1)), kind="stable")


def montage_grid(channels: int, side: int) -> tuple[int, int, int]:
    """How `plot_feature_maps` lays out `channels` maps of `side`×`side` units: (rows, columns, padding in
    units between the tiles and around them). A tile's share of the montage's width is
    side / (columns·side + (columns + 1)·padding) (block chapters)."""
    cols = math.ceil(math.sqrt(channels))
    return math.ceil(channels / cols), cols, max(1, side // 28)


def plot_feature_maps(
    fmap: np.ndarray,
    layer: str = "",
    *,
    rank: bool = True,
    max_channels: int | None = None,
    cmap: str = "viridis",
    width: float = PAGE_WIDTH,
    fig: Figure | SubFigure | None = None,
) -> Figure | SubFigure:
    """Every channel of one layer's map as ONE montage image, each channel scaled to its own
    min–max, optionally ranked by mean activation, with a colour bar and a title giving the
    layer, shape and number of all-zero channels (for a map with negative values, of channels
    never positive); drawn into `fig` (e.g. one of `fig.subfigures(...)`) or a new figure `width`
    inches wide. Chapter "block1" and every block chapter; chapter "training" (before and after
    training); chapter "your_model" on other models."""
    maps = _channels_last(fmap)
    order = rank_channels(maps) if rank else np.arange(maps.shape[-1])
    if max_channels is not None:
        order = order[:max_channels]
    stack = np.moveaxis(maps[:, :, order], -1, 0).astype(np.float32)
    dead = int(np.sum(stack.max(axis=(1, 2)) <= 0))
    # Each channel to [0, 1] on its own; a constant channel stays 0 (rescaling it would divide by 0).
    low = stack.min(axis=(1, 2), keepdims=True)
    span = stack.max(axis=(1, 2), keepdims=True) - low
    stack = np.divide(stack - low, span, out=np.zeros_like(stack), where=span > 0)
    rows, cols, pad = montage_grid(len(order), maps.shape[0])
    grid = montage(stack, fill=np.nan, grid_shape=(rows, cols), padding_width=pad)
    fig = _figure(fig, (width, 0.95 * width * grid.shape[0] / grid.shape[1] + 1.2))
    ax = fig.subplots()
    colormap = matplotlib.colormaps[cmap].with_extremes(bad="white")
    shown = ax.imshow(grid, cmap=colormap, vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    shape = "×".join(map(str, maps.shape))
    what = f"{len(order)} of {maps.shape[-1]}" if len(order) < maps.shape[-1] else f"all {len(order)}"
    ranked = ", strongest first" if rank else ""
    # after a ReLU a channel that is never positive is all zero; before one (ResNet's raw convolutions) it need not be
    silent = "all zero" if maps.min() >= 0 else "never positive"
    ax.set_title(f"{layer} {shape}\n{what} channels{ranked}; {dead} {silent}", fontsize=10)
    # below the montage, so the tiles get the whole width
    fig.colorbar(shown, ax=ax, location="bottom", shrink=0.5, aspect=40, label="activation, scaled per channel")
    return fig


def plot_strongest(
    image: np.ndarray,
    fmap: np.ndarray,
    layer: str = "",
    k: int = 5,
    cmap: str = "viridis",
    fig: Figure | SubFigure | None = None,
) -> Figure | SubFigure:
    """The input photo and the `k` channels with the highest mean activation, three panels to a
    row, each channel with its own colour bar in activation units; drawn into `fig` or a new
    figure as wide as the page (block chapters, chapter "training")."""
    maps = _channels_last(fmap)
    top = rank_channels(maps)[:k]
    rows = math.ceil((k + 1) / 3)
    fig = _figure(fig, (PAGE_WIDTH, 2.3 * rows))
    axes = fig.subplots(rows, 3, squeeze=False).ravel()
    axes[0].imshow(np.asarray(image))  # an array, or a vggbook.Photo (its image)
    axes[0].set_title("input", fontsize=9)
    for ax, c in zip(axes[1:], top, strict=False):
        shown = ax.imshow(maps[:, :, c], cmap=cmap, interpolation="nearest")
        ax.set_title(f"{layer} ch {c}\nmean {maps[:, :, c].mean():.3g}", fontsize=9)
        fig.colorbar(shown, ax=ax, shrink=0.8)
    for ax in axes:
        ax.set_axis_off()
    return fig


def plot_filters(
    kernel: np.ndarray, title: str = "first-layer filters", fig: Figure | SubFigure | None = None
) -> Figure | SubFigure:
    """First-layer kernels (3, 3, 3, N) as N colour patches, all scaled together so their
    relative strength shows; drawn into `fig` or a new figure (chapter "block1", chapter "training")."""
    kernel = np.asarray(kernel)
    if kernel.ndim != 4 or kernel.shape[2] != 3:
        raise ValueError(f"expected RGB-input kernels (k, k, 3, N), got shape {kernel.shape}")
    # VGG's first layer reads BGR (caffe order): flip to RGB so a "red" filter looks red.
    patches = np.moveaxis(kernel[:, :, ::-1, :], -1, 0)
    limit = np.abs(patches).max() or 1.0
    patches = 0.5 + 0.5 * patches / limit
    cols = math.ceil(math.sqrt(len(patches)))
    grid = montage(
        patches,
        fill=(1.0, 1.0, 1.0),
        grid_shape=(math.ceil(len(patches) / cols), cols),
        padding_width=1,
        channel_axis=-1,
    )
    fig = _figure(fig, (4.5, 4.8))
    ax = fig.subplots()
    ax.imshow(grid, interpolation="nearest")
    ax.set_title(f"{title}\n{len(patches)} × {kernel.shape[0]}×{kernel.shape[1]}×3, grey = 0", fontsize=10)
    ax.set_axis_off()
    return fig


def receptive_field_box(
    table: pd.DataFrame, layer: str, row: int, col: int, image_size: int
) -> tuple[int, int, int, int]:
    """Input pixels (x0, y0, x1, y1), inclusive and clipped, seen by unit (row, col) of
    `layer`, from the layer table's receptive field, stride and padding (block chapters)."""
    rf, stride, pad = (int(table.loc[layer, k]) for k in ("receptive_field", "stride", "padding"))
    y0, x0 = row * stride - pad, col * stride - pad
    clip = lambda v: int(min(max(v, 0), image_size - 1))  # noqa: E731
    return clip(x0), clip(y0), clip(x0 + rf - 1), clip(y0 + rf - 1)


def draw_box(ax: plt.Axes, box: tuple[int, int, int, int], label: str = "", colour: str = "yellow") -> None:
    """Draw an inclusive pixel box on an image axis (block chapters)."""
    x0, y0, x1, y1 = box
    ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0 + 1, y1 - y0 + 1, fill=False, lw=2, ec=colour))
    if label:  # above the box, or inside it when the box touches the image's top edge
        inside = y0 < 16
        left, right = sorted(ax.get_xlim())
        rightward = (x0 + x1) / 2 > (left + right) / 2  # a box right of the middle: the label ends at its right edge
        ax.text(
            x1 - 2 if rightward else x0 + 2,
            y0 + 2 if inside else y0 - 4,
            label,
            color=colour,
            fontsize=9,
            va="top" if inside else "bottom",
            ha="right" if rightward else "left",
            clip_on=True,
        )


def overlay_heatmap(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.45, cmap: str = "jet") -> np.ndarray:
    """RGB uint8 image with a [0, 1] heat map (any size) resized onto it and blended, coloured
    with a Matplotlib colormap (chapters "classifier", "training", block chapters)."""
    import cv2

    image = np.asarray(image)  # an array, or a vggbook.Photo (its image)
    heat = cv2.resize(np.asarray(heatmap, dtype=np.float32), image.shape[1::-1], interpolation=cv2.INTER_LINEAR)
    coloured = matplotlib.colormaps[cmap](np.clip(heat, 0, 1))[..., :3] * 255
    return np.clip((1 - alpha) * image + alpha * coloured, 0, 255).astype(np.uint8)


def plot_architecture(config: str = "D", input_size: int = 224, title: str | None = None) -> Figure:
    """The network drawn from `VGG_CONFIGS`: each conv/pool output a slab whose height grows with
    (not in proportion to) its spatial size and whose depth with log₂ of its channels, blocks coloured, shapes labelled,
    then the fully connected head, drawn the same way as 1×1 maps (chapter "architecture")."""
    fig, ax = plt.subplots(figsize=(PAGE_WIDTH, 3.3), layout="constrained")
    x, size = 0.0, input_size

    def slab(x: float, h: float, d: float, colour: str, label: str) -> float:
        skew = 0.35 * d
        ax.add_patch(Rectangle((x, -h / 2), d, h, fc=colour, ec="black", lw=0.6))
        ax.add_patch(
            Polygon(
                [(x, h / 2), (x + d, h / 2), (x + d + skew, h / 2 + skew), (x + skew, h / 2 + skew)],
                fc=colour,
                ec="black",
                lw=0.6,
                alpha=0.7,
            )
        )
        ax.add_patch(
            Polygon(
                [(x + d, -h / 2), (x + d + skew, -h / 2 + skew), (x + d + skew, h / 2 + skew), (x + d, h / 2)],
                fc=colour,
                ec="black",
                lw=0.6,
                alpha=0.5,
            )
        )
        ax.text(x + d / 2, -h / 2 - 0.4, label, rotation=90, ha="center", va="top", fontsize=7)
        return x + d + skew + 0.25

    height = lambda s: 1.2 + 7.0 * s / input_size  # noqa: E731
    depth = lambda c: 0.25 * math.log2(c / 16)  # noqa: E731
    x = slab(x, height(size), 0.15, "#dddddd", f"input {size}×{size}×3")
    for b, block in enumerate(VGG_CONFIGS[config], start=1):
        colour = BLOCK_COLOURS[b - 1]
        for spec in block:
            kernel, channels = parse_conv(spec)
            x = slab(x, height(size), depth(channels), colour, f"conv{kernel} {size}×{size}×{channels}")
        size //= 2
        x = slab(x, height(size), depth(channels), "#999999", f"pool {size}×{size}×{channels}")
        ax.text(x - 1.2, 5.2, f"block {b}", color=colour, fontsize=11, fontweight="bold", ha="center")
    for label, units in (("fc1", 4096), ("fc2", 4096), ("predictions", 1000)):  # 1×1 maps of `units` channels
        x = slab(x + 0.3, height(1), depth(units), "#e39b4c", f"{label} 1×1×{units}")
    ax.set_xlim(-0.5, x + 0.5)
    ax.set_ylim(-10.5, 6.5)
    ax.set_aspect("equal")
    ax.set_axis_off()
    name = {"D": "VGG16", "E": "VGG19"}.get(config, f"VGG config {config}")
    ax.set_title(title or f"{name}: slab height grows with spatial size, depth with log₂(channels)")
    return fig


class NumberedTable:
    """A DataFrame with a name and a caption. In the book it renders as a MyST `{table}`, numbered and
    cited with {numref}`name` (its Markdown form; `_config.yml` gives Markdown the precedence and parses
    it as MyST); in Jupyter or Colab as the usual HTML table, its caption on top."""

    def __init__(self, frame: pd.DataFrame, name: str, caption: str, formats: dict[str, object] | None = None):
        if not isinstance(frame, pd.DataFrame):
            raise TypeError(f"numbered_table needs a pandas DataFrame, got {type(frame).__name__}")
        unknown = set(formats or {}) - set(frame.columns)
        if unknown:
            raise ValueError(f"formats for unknown column(s) {sorted(unknown)}; columns: {list(frame.columns)}")
        self.frame, self.name, self.caption, self.formats = frame, name, caption, dict(formats or {})

    def _cell(self, column: object, value: object) -> str:
        if value is None or value is pd.NA or (isinstance(value, float | np.floating) and np.isnan(value)):
            text = "–"  # an empty cell, e.g. the receptive field of a dense layer
        elif column in self.formats:
            shown = self.formats[column]
            text = shown(value) if callable(shown) else shown.format(value)
        elif isinstance(value, bool | np.bool_):
            text = str(value)
        elif isinstance(value, int | np.integer):
            text = f"{value:,}"  # counts as integers with thousands separators
        elif isinstance(value, float | np.floating):
            text = f"{value:,.0f}" if float(value).is_integer() and abs(value) >= 1000 else f"{value:.4g}"
        else:
            text = str(value)
        return text.replace("|", "\\|")

    def _repr_markdown_(self) -> str:
        frame = self.frame.infer_objects()  # a transposed frame has object columns: find the numbers
        header = [str(frame.index.name or "")] + [str(c) for c in frame.columns]
        numeric = [pd.api.types.is_numeric_dtype(frame[c]) for c in frame.columns]
        lines = [
            "| " + " | ".join(header) + " |",
            "|:--|" + "".join("--:|" if n else ":--|" for n in numeric),
        ]
        for index, row in frame.iterrows():
            cells = [self._cell(None, index)] + [self._cell(c, v) for c, v in row.items()]
            lines.append("| " + " | ".join(cells) + " |")
        table = "\n".join(lines)
        # a tilde fence: a caption may hold `code`, and backticks cannot follow a backtick fence
        return f"~~~{{table}} {self.caption}\n:name: {self.name}\n\n{table}\n~~~\n"

    def _repr_html_(self) -> str:
        styler = self.frame.style.format(
            {c: (lambda v, c=c: self._cell(c, v)) for c in self.frame.columns}, escape=None
        ).format_index(lambda v: self._cell(None, v))
        return styler.set_caption(self.caption).to_html()


def numbered_table(
    frame: pd.DataFrame, name: str, caption: str, formats: dict[str, object] | None = None
) -> NumberedTable:
    """`frame` shown as a numbered table the prose can cite with {numref}`name`; `formats` maps a column
    to a format string such as "{:.1%}" or a function of the value. Integers are shown with thousands
    separators and empty cells as "–" (chapter "architecture", block chapters, chapter "training")."""
    return NumberedTable(frame, name, caption, formats)


def _whole(value: float) -> int | None:
    """A whole number of pixels, or None for a layer without one (a dense layer's receptive field)."""
    return None if pd.isna(value) else int(value)


# The layer table's columns as a reader reads them: a header in words with its unit, and how to show a value.
LAYER_HEADERS: dict[str, tuple[str, object]] = {
    "type": ("type", str),
    "output_shape": ("output", lambda shape: "×".join(f"{n:,}" for n in shape)),
    "params": ("parameters", int),
    "macs": ("MACs (millions)", lambda macs: macs / 1e6),
    "receptive_field": ("receptive field (px)", _whole),
    "stride": ("effective stride (px)", _whole),
    "padding": ("effective padding (px)", _whole),
    "activation_bytes": ("activations (KiB)", lambda n: n / 1024),
}


def layer_table_view(
    table: pd.DataFrame,
    name: str,
    caption: str,
    rows: list[str] | None = None,
    columns: tuple[str, ...] = ("output_shape", "params", "macs", "receptive_field", "stride", "activation_bytes"),
) -> NumberedTable:
    """Rows of `vggbook.layer_table` as a numbered table a reader can read: headers in words with units,
    shapes as 224×224×64, parameters as integers, MACs in millions, memory in KiB (chapter "architecture",
    block chapters)."""
    unknown = [c for c in columns if c not in LAYER_HEADERS]
    if unknown:
        raise ValueError(f"unknown layer-table column(s) {unknown}; choose from {list(LAYER_HEADERS)}")
    part = table if rows is None else table.loc[list(rows)]
    shown = pd.DataFrame(
        {LAYER_HEADERS[c][0]: [LAYER_HEADERS[c][1](v) for v in part[c]] for c in columns},
        index=pd.Index(part.index, name="layer"),
    )
    formats = {header: amount for header in ("MACs (millions)", "activations (KiB)") if header in shown}
    return NumberedTable(shown, name, caption, formats)


def amount(value: float) -> str:
    """A quantity for a table: 12,544 when it is whole, 1,849.7 when it is not (every chapter's tables)."""
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def plot_preprocessing(photo: np.ndarray) -> Figure:
    """What `vggbook.preprocess` makes of a photo: the photo; the same pixels in OpenCV's BGR order shown as
    if they were RGB (what a reader sees who forgets the conversion); and the three BGR channels after the
    ImageNet mean is subtracted, on one diverging scale in pixel units (chapter "block1")."""
    x = preprocess(photo)[0]
    fig, axes = plt.subplots(1, 5, figsize=(PAGE_WIDTH, 2.3), layout="constrained")
    axes[0].imshow(photo)
    axes[0].set_title("photo (RGB)", fontsize=8)
    axes[1].imshow(photo[..., ::-1])
    axes[1].set_title("BGR shown as RGB", fontsize=8)
    limit = float(np.abs(x).max())
    for ax, c, name in zip(axes[2:], range(3), "BGR", strict=True):
        shown = ax.imshow(x[..., c], cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set_title(f"input channel {c} ({name})\nminus {CAFFE_MEAN_BGR[c]:.1f}", fontsize=8)
    fig.colorbar(shown, ax=axes[2:], location="bottom", shrink=0.6, label="network input (pixel units)")
    for ax in axes:
        ax.set_axis_off()
    fig.suptitle("What preprocessing does to the photo: BGR order, ImageNet's mean colour subtracted", fontsize=10)
    return fig
