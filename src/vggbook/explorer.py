"""An interactive unit explorer for a block's feature maps, as one self-contained HTML fragment.

Every block chapter shows one, after its feature maps (issue 12): the photograph, one channel of one of the
block's layers as a map beside it, and, for the unit the reader points at (mouse, tap, or the arrow keys on
the focused map), that unit's receptive-field box on the photograph, its value and the strongest embedded
channels at that position. For `block1_conv1` it also shows how the unit is computed, as CNN Explainer
(Wang et al., 2020) does: the 3×3×3 window of the preprocessed input, the kernel, the sum of products plus
the bias, the ReLU.

Design. The output needs no kernel, no widget comm and no request: `UnitExplorer._repr_html_()` is one
`<div class="vgg-explorer">` holding its CSS, its data (a JSON `<script>`) and a small dependency-free script
(`explorer.js`, read from this package, as is `explorer.css`), so the same output works in the static site,
in Jupyter and in Colab. No plotting library fits the 3 MB a page may add: Bokeh 3.9's inline runtime alone
is 1.65 MB and it stores arrays as uncompressed base64 (room for about 8 of block 1's 224×224 channels);
Plotly's bundle is 4.6 MB; Vega-Lite needs one mark per unit (50,176 per channel); anywidget needs a kernel
or embedded widget state. The data:
- each embedded channel quantised to uint8 over its own range: q = round(255 (v - low) / (high - low)), so the
  value shown, low + q (high - low) / 255, is within half a step, (high - low) / 510, of the true one;
- the photo's RGB bytes, and each layer's channels one after the other, stored row by row as differences
  from the left neighbour (mod 256), deflated (zlib, one stream per layer) and base64-encoded; the browser
  inflates them with its built-in `DecompressionStream` and sums the differences back: exact, with no canvas
  read-back (which anti-fingerprinting browsers perturb), and as small as OpenCV's PNG of the same maps;
- per layer: its size, the layer table's receptive field, stride and padding (the browser draws the box
  with the formula of `vggbook.receptive_field_box`), and the channels, strongest mean activation first
  (`vggbook.rank_channels`): at least `min_channels` of each layer, then one more of each layer in turn
  while the whole fragment stays within `max_bytes`;
- for `block1_conv1`: its kernel and bias (9 significant digits, which read back as the same float32); the
  window is read from the photo's exact pixels, preprocessed as `vggbook.preprocess` does (BGR minus the
  caffe means, in float32), zeros outside the image.

DOM contract (what tests and readers can rely on; `ROOT` is the element with class `vgg-explorer`):
- `ROOT[data-ready]` is "true" once the data is decoded and drawn; `ROOT[data-layer]`, `[data-channel]`
  (the channel's index in the layer), `[data-row]`, `[data-col]` are the unit shown, `[data-value]` its
  stored value, `[data-box]` its receptive-field box "x0 y0 x1 y1" (inclusive photo pixels);
- `select.vgg-explorer-layer` (option values: layer names) and `select.vgg-explorer-channel` (option
  values: channel indices, strongest first) pick the map;
- `.vgg-explorer-map` is the focusable map (tabindex 0; arrow keys move the unit by one, with Shift by
  eight); its `canvas` has one pixel per unit (row r, column c is canvas pixel (c, r));
- `svg.vgg-explorer-overlay` (viewBox "0 0 S S", S the photo's size) lies over the photo; its
  `rect.vgg-explorer-box` has x = x0, y = y0, width = x1 - x0 + 1, height = y1 - y0 + 1 for the box
  (x0, y0, x1, y1) of `receptive_field_box(table, layer, row, col, S)`;
- `.vgg-explorer-readout` states the unit, its value and its box (`[data-value]` holds the value);
- `.vgg-explorer-top button[data-channel]`: the strongest embedded channels at the unit, strongest first;
  pressing one shows that channel;
- `.vgg-explorer-conv` (only for `block1_conv1`; `hidden` for other layers) shows the computation; its
  `.vgg-explorer-conv-result` carries `data-sum` (the sum of the 27 products), `data-bias`, `data-pre`
  (sum plus bias) and `data-value` (after the ReLU);
- `.vgg-explorer-status` is shown until the data is decoded (without JavaScript it stays, saying so), says
  why when the data cannot be decoded, and is hidden once the figure is ready.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.resources import files

import keras
import matplotlib
import numpy as np
import pandas as pd

from vggbook.features import check_layer_names, ensure_built
from vggbook.images import CAFFE_MEAN_BGR, Photo
from vggbook.plotting import rank_channels

# What the page must stay under, all of the explorer included (the issue allows 3 MB per page).
MAX_BYTES = 2_500_000
COMPUTED_LAYER = "block1_conv1"  # the layer whose computation the explorer spells out
TOP_CHANNELS = 5  # strongest channels listed at the unit's position


def _static(name: str) -> str:
    resource = files("vggbook").joinpath(name)
    if not resource.is_file():
        raise ImportError(
            f"vggbook is installed without {name}: its package data is missing (pyproject's package-data "
            'must list "*.js" and "*.css")'
        )
    return resource.read_text(encoding="utf-8")


SCRIPT = _static("explorer.js")
STYLE = _static("explorer.css")
_SERIAL = itertools.count(1)  # explorers made in this process: ids stay unique on one page


@dataclass(frozen=True)
class UnitExplorer:
    """The explorer of one block (see `unit_explorer`): `html` is the whole fragment; `channels` the channel
    indices embedded per layer, strongest first; `total_channels` each layer's channel count."""

    html: str
    channels: dict[str, tuple[int, ...]]
    total_channels: dict[str, int]

    @property
    def nbytes(self) -> int:
        """Size of the fragment in bytes (UTF-8): what it adds to a page."""
        return len(self.html.encode("utf-8"))

    def _repr_html_(self) -> str:
        return self.html

    def __repr__(self) -> str:
        counts = ", ".join(f"{name}: {len(c)} of {self.total_channels[name]}" for name, c in self.channels.items())
        return f"UnitExplorer({counts} channels; {self.nbytes / 1e6:.2f} MB)"


def _float32(value: float) -> float:
    """A float32 as a decimal of 9 significant digits, which reads back as the same float32 (JS: Math.fround)."""
    return float(f"{float(np.float32(value)):.9g}")


def _differences(data: np.ndarray) -> bytes:
    """uint8 (rows, columns[, channels]) → each value minus its left neighbour (mod 256), row by row: smooth
    images become runs of small numbers, which deflate well."""
    data = np.asarray(data, dtype=np.uint8)
    diff = data.copy()
    diff[:, 1:] = data[:, 1:] - data[:, :-1]  # uint8 arithmetic wraps
    return diff.tobytes()


def _deflate(chunks: Sequence[bytes]) -> tuple[bytes, list[int]]:
    """One zlib stream of `chunks`, flushed after each, and how many bytes each chunk took in it.

    The stream of the first k chunks starts with the same bytes whatever follows, so the sizes measured once
    give the size of every prefix. Run-length deflate (zlib's Z_RLE) is 2 % smaller than level 9's default
    strategy on block 1's quantised maps and 20 times faster; to the browser it is plain deflate."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS, 9, zlib.Z_RLE)
    parts = [deflate.compress(chunk) + deflate.flush(zlib.Z_SYNC_FLUSH) for chunk in chunks]
    return b"".join(parts) + deflate.flush(), [len(part) for part in parts]


def _base64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _quantise(fmap: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(h, w, C) float32 → uint8 steps over each channel's own range, and the ranges' lows and highs
    (a constant channel: all steps 0, low = high)."""
    low, high = fmap.min(axis=(0, 1)), fmap.max(axis=(0, 1))
    span = (high - low).astype(np.float64)
    scale = np.divide(255.0, span, out=np.zeros_like(span), where=span > 0)
    steps = np.round((fmap - low.astype(np.float64)) * scale)
    return np.clip(steps, 0, 255).astype(np.uint8), low, high


def _check_inputs(
    model: keras.Model, photo: np.ndarray, maps: Mapping[str, np.ndarray], table: pd.DataFrame, layers: Sequence[str]
) -> tuple[int, list[str]]:
    """The photo's size and the layers as a list, or a ValueError that names the problem."""
    ensure_built(model)
    if isinstance(layers, str):
        layers = [layers]
    layers = list(layers)
    if not layers:
        raise ValueError(
            "layers is empty: name the block's layers, e.g. ['block1_conv1', 'block1_conv2', 'block1_pool']"
        )
    if len(set(layers)) != len(layers):
        raise ValueError(f"layers lists a layer twice: {layers}")
    check_layer_names(model, layers)
    size = model.input_shape[1]
    if size is None or model.input_shape[1:] != (size, size, 3):
        raise ValueError(f"the explorer needs a model of square RGB input, got input shape {model.input_shape}")
    if not isinstance(photo, np.ndarray) or photo.dtype != np.uint8 or photo.shape != (size, size, 3):
        kind = f"{photo.dtype} array of shape {photo.shape}" if isinstance(photo, np.ndarray) else type(photo).__name__
        raise ValueError(
            f"photo must be the RGB uint8 image of shape ({size}, {size}, 3) the model reads, got a {kind}; "
            "use vggbook.photo(…) (its .image) or vggbook.load_image"
        )
    missing = [name for name in layers if name not in maps]
    if missing:
        raise ValueError(
            f"maps has no output for {missing}: pass vggbook.feature_maps(model, vggbook.preprocess(photo))"
        )
    for name in layers:
        expected = (1, *model.get_layer(name).output.shape[1:])
        got = np.shape(maps[name])
        if got != expected:
            raise ValueError(f"maps[{name!r}] has shape {got}; {name} of this model outputs {expected}")
    columns = ["receptive_field", "stride", "padding"]
    absent = [c for c in columns if c not in table.columns]
    if absent:
        raise ValueError(f"table lacks the column(s) {absent}: pass vggbook.layer_table(model)")
    unknown = [name for name in layers if name not in table.index]
    if unknown:
        raise ValueError(f"table has no row for {unknown}: pass vggbook.layer_table(model)")
    flat = [name for name in layers if table.loc[name, columns].isna().any()]
    if flat:
        raise ValueError(f"{flat} have no receptive field (not spatial layers): show conv and pool layers")
    return size, layers


def _computed_layer(model: keras.Model, layers: Sequence[str]) -> keras.layers.Conv2D | None:
    """`block1_conv1` when it is shown and is a 3×3 ReLU convolution of the RGB input, else None."""
    if COMPUTED_LAYER not in layers:
        return None
    layer = model.get_layer(COMPUTED_LAYER)
    plain = (
        isinstance(layer, keras.layers.Conv2D)
        and tuple(layer.kernel_size) == (3, 3)
        and tuple(layer.strides) == (1, 1)
        and layer.padding == "same"
        and layer.use_bias
        and layer.activation is keras.activations.relu
        and layer.input is model.inputs[0]
    )
    return layer if plain else None


def _computation(layer: keras.layers.Conv2D, photo: np.ndarray, fmap: np.ndarray) -> dict:
    """Kernel and bias of `block1_conv1`, checked against its map: the page's sums must be the map's values."""
    kernel, bias = (np.asarray(w, dtype=np.float32) for w in layer.get_weights())
    # the chapter's recomputation: every zero-padded 3×3×3 window of the preprocessed photo times the kernel
    x = photo[..., ::-1].astype(np.float32) - CAFFE_MEAN_BGR
    windows = np.lib.stride_tricks.sliding_window_view(np.pad(x, ((1, 1), (1, 1), (0, 0))), (3, 3), axis=(0, 1))
    by_hand = np.maximum(np.einsum("hwcij,ijco->hwo", windows, kernel) + bias, 0)
    if not np.allclose(by_hand, fmap[0], rtol=1e-4, atol=1e-3):
        worst = float(np.abs(by_hand - fmap[0]).max())
        raise ValueError(
            f"maps[{COMPUTED_LAYER!r}] is not {COMPUTED_LAYER} of this photo and model (they differ by up to "
            f"{worst:.3g}): pass maps = vggbook.feature_maps(model, vggbook.preprocess(photo))"
        )
    return {
        "layer": layer.name,
        "mean_bgr": [_float32(m) for m in CAFFE_MEAN_BGR],
        # per output channel its 27 weights in (row, column, input channel) order: kernel[:, :, :, o].ravel()
        "kernel": [[_float32(w) for w in kernel[..., o].ravel()] for o in range(kernel.shape[-1])],
        "bias": [_float32(b) for b in bias],
    }


def _colormap(name: str = "viridis") -> str:
    """256 RGB colours of a Matplotlib colormap as base64 bytes (the book's feature maps use viridis)."""
    rgb = np.round(matplotlib.colormaps[name](np.linspace(0, 1, 256))[:, :3] * 255).astype(np.uint8)
    return _base64(rgb.tobytes())


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


class _Layer:
    """One layer's data for the page: its size and receptive-field numbers, and its channels strongest first,
    quantised, with the bytes each takes in the layer's deflate stream."""

    def __init__(self, name: str, fmap: np.ndarray, table: pd.DataFrame):
        self.name = name
        self.head = {
            "name": name,
            "height": fmap.shape[0],
            "width": fmap.shape[1],
            "total_channels": fmap.shape[2],
            "receptive_field": int(table.loc[name, "receptive_field"]),
            "stride": int(table.loc[name, "stride"]),
            "padding": int(table.loc[name, "padding"]),
        }
        order = rank_channels(fmap)
        steps, low, high = _quantise(fmap[:, :, order])
        means = fmap.mean(axis=(0, 1))
        self.channels = [
            {"index": int(c), "mean": _float32(means[c]), "low": _float32(lo), "high": _float32(hi)}
            for c, lo, hi in zip(order, low, high, strict=True)
        ]
        self.differences = [_differences(steps[:, :, k]) for k in range(len(order))]
        self.sizes = _deflate(self.differences)[1]

    def cost(self, k: int) -> int:
        """About what the k-th channel (from 0) adds to the page: its description and its base64 bytes."""
        return len(_json(self.channels[k])) + 1 + math.ceil(self.sizes[k] * 4 / 3)

    def data(self, count: int) -> dict:
        """The layer with its `count` strongest channels, their steps in one deflate stream (base64)."""
        return self.head | {"channels": self.channels[:count], "data": _base64(_deflate(self.differences[:count])[0])}


def _assemble(head: dict, layers: list[_Layer], counts: dict[str, int]) -> str:
    """The data as JSON: `head`, then "layers", each with its first `counts[name]` channels."""
    return _json(head | {"layers": [layer.data(counts[layer.name]) for layer in layers]})


def _fragment(uid: str, payload: str) -> str:
    """The HTML of one explorer: its style, a note shown until the script runs, its data, its script."""
    data = payload.replace("</", "<\\/")  # nothing in the JSON may close the <script> element
    return (
        f'<div class="vgg-explorer" id="{uid}" data-ready="false">\n'
        f"<style>\n{STYLE}</style>\n"
        '<p class="vgg-explorer-status">An interactive figure: it runs with JavaScript, on the book\'s site or '
        "when the cell runs in Jupyter or Colab.</p>\n"
        f'<script type="application/json" class="vgg-explorer-data">{data}</script>\n'
        f"<script>\n(function () {{\n{SCRIPT}\nvggExplorer(document.getElementById({json.dumps(uid)}));\n}})();\n"
        "</script>\n</div>\n"
    )


def unit_explorer(
    model: keras.Model,
    photo: np.ndarray | Photo,
    maps: Mapping[str, np.ndarray],
    table: pd.DataFrame,
    layers: Sequence[str],
    *,
    max_bytes: int = MAX_BYTES,
    min_channels: int = 16,
) -> UnitExplorer:
    """An interactive figure of a block's `layers`: the reader picks a layer and a channel and points at a
    unit; the photo shows its receptive-field box and the page its value (and for `block1_conv1` how it
    is computed). `maps` = `vggbook.feature_maps(model, vggbook.preprocess(photo))`, `table` =
    `vggbook.layer_table(model)`. Each layer embeds its strongest channels: at least `min_channels`, then
    as many as keep the whole HTML within `max_bytes`. Every block chapter."""
    if isinstance(photo, Photo):
        photo = photo.image
    size, layers = _check_inputs(model, photo, maps, table, layers)
    if min_channels < 1:
        raise ValueError(f"min_channels must be at least 1, got {min_channels}")
    computed = _computed_layer(model, layers)
    head = {
        "image_size": size,
        "photo": _base64(_deflate([_differences(photo)])[0]),
        "colormap": _colormap(),
        "top_channels": TOP_CHANNELS,
        "computation": _computation(computed, photo, maps[COMPUTED_LAYER]) if computed is not None else None,
    }
    data = [_Layer(name, np.asarray(maps[name], dtype=np.float32)[0], table) for name in layers]
    total = {layer.name: layer.head["total_channels"] for layer in data}

    # The budget: at least `min_channels` of each layer, then one more of each in turn while the estimate fits;
    # then, while the fragment itself does not fit, the last channel added goes out again.
    counts = {name: min(min_channels, total[name]) for name in layers}
    added = []  # the layers in the order their channels beyond `min_channels` were added
    placeholder = f"vgg-explorer-{'0' * 10}-{next(_SERIAL)}"  # the id will have this length
    used = len(_fragment(placeholder, _assemble(head, data, dict.fromkeys(layers, 0))).encode("utf-8"))
    used += sum(layer.cost(k) for layer in data for k in range(counts[layer.name]))
    grew = True
    while grew:
        grew = False
        for layer in data:
            k = counts[layer.name]
            if k < total[layer.name] and used + layer.cost(k) <= max_bytes:
                used += layer.cost(k)
                counts[layer.name] += 1
                added.append(layer.name)
                grew = True
    while True:
        payload = _assemble(head, data, counts)
        uid = placeholder.replace("0" * 10, hashlib.sha1(payload.encode("utf-8")).hexdigest()[:10], 1)
        html = _fragment(uid, payload)
        if len(html.encode("utf-8")) <= max_bytes:
            break
        if not added:
            raise ValueError(
                f"the {min_channels} strongest channels of each layer take {len(html.encode('utf-8')):,} bytes, "
                f"more than max_bytes={max_bytes:,}: raise max_bytes or lower min_channels"
            )
        counts[added.pop()] -= 1
    channels = {layer.name: tuple(c["index"] for c in layer.channels[: counts[layer.name]]) for layer in data}
    return UnitExplorer(html=html, channels=channels, total_channels=total)
