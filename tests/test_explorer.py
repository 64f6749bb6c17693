"""vggbook.explorer: the data the unit explorer embeds in the page, read back as a browser would.

The page's behaviour (pointing, keys, drawing, dark mode) is checked in headless Chromium:
tests/site/test_explorer.py.
"""

from __future__ import annotations

import base64
import json
import re
import tomllib
import zlib
from fnmatch import fnmatch
from pathlib import Path

import generic_models
import keras
import numpy as np
import pandas as pd
import pytest

import vggbook
from vggbook.explorer import MAX_BYTES, UnitExplorer, unit_explorer

ROOT = Path(__file__).resolve().parents[1]
BLOCK1 = ["block1_conv1", "block1_conv2", "block1_pool"]
DATA = re.compile(r'<script type="application/json" class="vgg-explorer-data">(.*?)</script>', re.S)


# ---- reading the page's data back, independently of the code that wrote it


def payload(explorer: UnitExplorer) -> dict:
    """The JSON the page's script reads."""
    (text,) = DATA.findall(explorer.html)
    return json.loads(text)


def unpack(text: str, row_length: int, step: int) -> np.ndarray:
    """base64 → inflate → running sums of each row's left differences (mod 256), rows of `row_length` bytes."""
    rows = np.frombuffer(zlib.decompress(base64.b64decode(text)), np.uint8).reshape(-1, row_length // step, step)
    return (np.cumsum(rows.astype(np.int64), axis=1) % 256).astype(np.uint8)


def embedded_maps(layer: dict) -> np.ndarray:
    """A layer's embedded channels as (k, h, w) float values, dequantised as the page does."""
    steps = unpack(layer["data"], layer["width"], 1).reshape(-1, layer["height"], layer["width"])
    assert len(steps) == len(layer["channels"])
    low = np.array([c["low"] for c in layer["channels"]])[:, None, None]
    high = np.array([c["high"] for c in layer["channels"]])[:, None, None]
    return low + steps * (high - low) / 255


def box_from_page_numbers(layer: dict, row: int, col: int, size: int) -> tuple[int, int, int, int]:
    """The box the page's script draws, from the numbers it is given (explorer.js: box())."""
    clip = lambda v: min(max(v, 0), size - 1)  # noqa: E731
    y0, x0 = row * layer["stride"] - layer["padding"], col * layer["stride"] - layer["padding"]
    rf = layer["receptive_field"]
    return clip(x0), clip(y0), clip(x0 + rf - 1), clip(y0 + rf - 1)


# ---- fixtures


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return vggbook.sample_image("chelsea")


@pytest.fixture(scope="module")
def small(vgg16_small_224, photo):
    """The small VGG16 (width 1/8), its maps of the photo and its layer table."""
    maps = vggbook.feature_maps(vgg16_small_224, vggbook.preprocess(photo))
    return vgg16_small_224, maps, vggbook.layer_table(vgg16_small_224)


@pytest.fixture(scope="module")
def block1(small, photo) -> UnitExplorer:
    model, maps, table = small
    return unit_explorer(model, photo, maps, table, BLOCK1)


# ---- the data


def test_fragment_is_one_self_contained_element(block1):
    html = block1.html
    assert html.startswith('<div class="vgg-explorer" id="') and html.rstrip().endswith("</div>")
    assert html.count('class="vgg-explorer"') == 1
    assert block1._repr_html_() == html
    # no request of any kind: no src/href attributes, no URL but the SVG namespace the script names
    assert not re.search(r"\s(src|href)\s*=", html)
    assert set(re.findall(r"https?://[^\s\"')]+", html)) <= {"http://www.w3.org/2000/svg"}
    assert "DecompressionStream" in html  # the script is inlined, not linked
    assert repr(block1).startswith("UnitExplorer(block1_conv1: 8 of 8")


def test_photo_is_embedded_exactly(block1, photo):
    data = payload(block1)
    assert data["image_size"] == 224
    decoded = unpack(data["photo"], 224 * 3, 3).reshape(224, 224, 3)
    np.testing.assert_array_equal(decoded, photo)


def test_a_photo_object_is_read_as_its_image(small, block1):
    model, maps, table = small
    cat = vggbook.photo("chelsea")
    data = payload(unit_explorer(model, cat, maps, table, BLOCK1))
    np.testing.assert_array_equal(unpack(data["photo"], 224 * 3, 3).reshape(224, 224, 3), cat.image)


def test_maps_decode_within_half_a_quantisation_step(block1, small):
    _, maps, _ = small
    data = payload(block1)
    assert [layer["name"] for layer in data["layers"]] == BLOCK1
    for layer in data["layers"]:
        fmap = maps[layer["name"]][0]
        indices = [c["index"] for c in layer["channels"]]
        assert indices == list(vggbook.rank_channels(fmap)[: len(indices)]), "strongest first"
        assert indices == list(block1.channels[layer["name"]])
        assert (layer["height"], layer["width"], layer["total_channels"]) == fmap.shape
        values = embedded_maps(layer)
        for k, channel in enumerate(layer["channels"]):
            true = fmap[:, :, channel["index"]]
            assert channel["low"] == pytest.approx(true.min(), rel=1e-7, abs=1e-30)
            assert channel["high"] == pytest.approx(true.max(), rel=1e-7, abs=1e-30)
            half_step = (channel["high"] - channel["low"]) / 510
            error = np.abs(values[k] - true).max()
            assert error <= half_step * (1 + 1e-5) + 1e-6, f"{layer['name']} channel {channel['index']}: {error}"
        assert len(np.unique(values[0])) > 10, "a real map, not a constant"


def test_box_numbers_are_the_layer_table(small, photo):
    model, maps, table = small
    for block in range(1, 6):
        names = [layer.name for layer in vggbook.block_layers(model, block)]
        data = payload(unit_explorer(model, photo, maps, table, names, min_channels=1))
        for layer in data["layers"]:
            name = layer["name"]
            for key in ("receptive_field", "stride", "padding"):
                assert layer[key] == table.loc[name, key], f"{name} {key}"
            h, w = layer["height"], layer["width"]
            units = {(0, 0), (0, w - 1), (h - 1, 0), (h - 1, w - 1), (h // 2, w // 2), (1, w // 3), (h - 2, 2)}
            for row, col in units:
                expected = vggbook.receptive_field_box(table, name, row, col, 224)
                assert box_from_page_numbers(layer, row, col, 224) == expected, f"{name} ({row}, {col})"


def test_block1_window_sums_equal_the_chapters_convolution(block1, small):
    """The page computes block1_conv1 from the embedded photo, kernel and bias: those numbers reproduce the map."""
    model, maps, _ = small
    data = payload(block1)
    computation = data["computation"]
    kernel, bias = model.get_layer("block1_conv1").get_weights()
    embedded_kernel = np.array(computation["kernel"], np.float32).reshape(-1, 3, 3, 3)  # (out, row, col, in)
    np.testing.assert_array_equal(embedded_kernel, np.moveaxis(kernel, -1, 0))  # float32 exactly
    np.testing.assert_array_equal(np.array(computation["bias"], np.float32), bias)
    photo = unpack(data["photo"], 224 * 3, 3).reshape(224, 224, 3)
    # preprocessed as vggbook.preprocess: BGR minus the caffe means, float32; zero padding at the border
    x = photo[..., ::-1].astype(np.float32) - np.array(computation["mean_bgr"], np.float32)
    np.testing.assert_array_equal(x, vggbook.preprocess(photo)[0])
    padded = np.pad(x, ((1, 1), (1, 1), (0, 0)))
    fmap = maps["block1_conv1"][0]
    units = [(0, 0), (0, 223), (223, 0), (223, 223), (0, 111), (111, 0), (223, 57), (57, 223), (112, 112), (5, 200)]
    for row, col in units:
        window = padded[row : row + 3, col : col + 3, :].astype(np.float64)  # rows row-1 … row+1 of the photo
        for out in range(embedded_kernel.shape[0]):
            total = float(np.sum(window * embedded_kernel[out])) + float(computation["bias"][out])
            assert max(total, 0.0) == pytest.approx(float(fmap[row, col, out]), rel=1e-4, abs=1e-3), (row, col, out)
    assert data["computation"]["layer"] == "block1_conv1"


def test_only_block1_conv1_gets_the_computation(small, photo):
    model, maps, table = small
    data = payload(unit_explorer(model, photo, maps, table, ["block2_conv1", "block2_pool"]))
    assert data["computation"] is None


def test_budget_holds_and_min_channels_is_respected(small, photo):
    model, maps, table = small
    names = ["block3_conv1", "block3_conv2", "block3_conv3", "block3_pool"]  # 32 channels each
    everything = unit_explorer(model, photo, maps, table, names, max_bytes=10**9)
    assert all(len(everything.channels[n]) == 32 for n in names)
    previous = sum(len(c) for c in everything.channels.values())
    per_channel = everything.nbytes / previous  # more than one channel's average share of the page
    for fraction in (0.9, 0.7, 0.55):
        max_bytes = int(everything.nbytes * fraction)
        explorer = unit_explorer(model, photo, maps, table, names, max_bytes=max_bytes, min_channels=4)
        assert max_bytes - 3 * per_channel < explorer.nbytes <= max_bytes, "within the budget, and using it"
        counts = [len(explorer.channels[n]) for n in names]
        assert min(counts) >= 4 and sum(counts) < previous
        for name in names:  # the strongest first: a prefix of the ranking
            rank = list(vggbook.rank_channels(maps[name]))
            assert list(explorer.channels[name]) == rank[: len(explorer.channels[name])]
        previous = sum(counts)
    # fewer channels than min_channels: all of them
    explorer = unit_explorer(model, photo, maps, table, BLOCK1, min_channels=16)
    assert all(len(explorer.channels[n]) == 8 for n in BLOCK1)
    with pytest.raises(ValueError, match="max_bytes"):
        unit_explorer(model, photo, maps, table, names, max_bytes=everything.nbytes // 3, min_channels=30)


@pytest.fixture(scope="module")
def full_width(photo):
    """The real VGG16 convolutional base, seeded random weights, and its maps of the photo."""
    model = vggbook.build_vgg16(include_top=False, weights="random", seed=0)
    return model, vggbook.feature_maps(model, vggbook.preprocess(photo)), vggbook.layer_table(model)


def test_block1_at_full_width_fits_the_budget(full_width, photo):
    model, maps, table = full_width
    explorer = unit_explorer(model, photo, maps, table, BLOCK1)
    assert explorer.nbytes <= MAX_BYTES <= 3_000_000
    assert all(16 <= len(explorer.channels[n]) < 64 for n in BLOCK1), explorer
    data = payload(explorer)
    layer = data["layers"][0]
    values = embedded_maps(layer)
    true = np.moveaxis(maps["block1_conv1"][0][:, :, list(explorer.channels["block1_conv1"])], -1, 0)
    half_steps = np.array([(c["high"] - c["low"]) / 510 for c in layer["channels"]])[:, None, None]
    assert np.all(np.abs(values - true) <= half_steps * (1 + 1e-5) + 1e-6)


def test_explorers_get_unique_ids(small, photo):
    model, maps, table = small
    first, second = (unit_explorer(model, photo, maps, table, ["block5_pool"]) for _ in range(2))
    ids = [re.search(r'id="([^"]+)"', e.html).group(1) for e in (first, second)]
    assert ids[0] != ids[1]
    for explorer, uid in zip((first, second), ids, strict=True):
        assert f"vggExplorer(document.getElementById({json.dumps(uid)}))" in explorer.html


def test_bad_input_is_named(small, photo):
    model, maps, table = small
    with pytest.raises(ValueError, match="layers is empty"):
        unit_explorer(model, photo, maps, table, [])
    with pytest.raises(ValueError, match="unknown layer"):
        unit_explorer(model, photo, maps, table, ["block9_conv1"])
    with pytest.raises(ValueError, match=r"maps has no output for \['block2_conv1'\]"):
        unit_explorer(model, photo, {"block1_conv1": maps["block1_conv1"]}, table, ["block1_conv1", "block2_conv1"])
    with pytest.raises(ValueError, match=r"maps\['block1_pool'\] has shape \(112, 112, 8\)"):
        unit_explorer(model, photo, maps | {"block1_pool": maps["block1_pool"][0]}, table, BLOCK1)
    with pytest.raises(ValueError, match="twice"):
        unit_explorer(model, photo, maps, table, ["block1_pool", "block1_pool"])
    for bad in (photo.astype(np.float32), photo[:200], photo[..., :1], photo.tolist()):
        with pytest.raises(ValueError, match=r"photo must be the RGB uint8 image of shape \(224, 224, 3\)"):
            unit_explorer(model, bad, maps, table, BLOCK1)
    with pytest.raises(ValueError, match="receptive_field"):
        unit_explorer(model, photo, maps, table.drop(columns="receptive_field"), BLOCK1)
    with pytest.raises(ValueError, match="min_channels"):
        unit_explorer(model, photo, maps, table, BLOCK1, min_channels=0)
    # maps of another photo: the page's computation would contradict its map
    other = vggbook.feature_maps(model, vggbook.preprocess(vggbook.sample_image("coffee")))
    with pytest.raises(ValueError, match="not block1_conv1 of this photo"):
        unit_explorer(model, photo, other, table, BLOCK1)


def test_script_and_style_are_package_data():
    """explorer.js and .css are read from the installed package: a wheel (Colab's pip install) must carry them."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config.get("tool", {}).get("setuptools", {}).get("package-data", {}).get("vggbook", [])
    for name in ("explorer.js", "explorer.css"):
        assert (ROOT / "src" / "vggbook" / name).is_file()
        assert any(fnmatch(name, p) for p in patterns), f"pyproject.toml's package-data does not ship {name}"


# ---- any Keras image model (chapter "your_model")

RESIDUAL_BLOCK = [
    "conv2_block1_1_relu",
    "conv2_block1_2_relu",
    "conv2_block1_3_conv",
    "conv2_block1_0_conv",
    "conv2_block1_add",
    "conv2_block1_out",
]


def test_explorer_across_a_residual_block_of_resnet50(photo):
    model, maps = generic_models.resnet50(), generic_models.resnet50_maps()
    table = vggbook.layer_table(model)
    maps = maps | vggbook.feature_maps(model, vggbook.preprocess(photo), RESIDUAL_BLOCK)
    explorer = unit_explorer(model, photo, maps, table, RESIDUAL_BLOCK, min_channels=4)
    assert explorer.nbytes <= MAX_BYTES
    data = payload(explorer)
    assert [layer["name"] for layer in data["layers"]] == RESIDUAL_BLOCK and data["computation"] is None
    for layer in data["layers"]:
        name = layer["name"]
        assert (layer["height"], layer["width"], layer["total_channels"]) == maps[name].shape[1:]
        for row, col in ((0, 0), (55, 55), (27, 13), (3, 50)):
            assert box_from_page_numbers(layer, row, col, 224) == vggbook.receptive_field_box(
                table, name, row, col, 224
            )
    # The add's box holds both paths' boxes: the main path's (three convolutions, one 3×3) and the shortcut's
    # (one 1×1 convolution of pool1's map), computed here from each path's own layers.
    fields = {layer["name"]: layer for layer in data["layers"]}
    pool = table.loc["pool1_pool"]
    shortcut = (int(pool.receptive_field), int(pool.stride), int(pool.padding))
    main = (shortcut[0] + 2 * shortcut[1], shortcut[1], shortcut[2] + shortcut[1])  # + one 3×3 "same" at stride 4
    for name, (rf, stride, pad) in {"conv2_block1_0_conv": shortcut, "conv2_block1_3_conv": main}.items():
        assert (fields[name]["receptive_field"], fields[name]["stride"], fields[name]["padding"]) == (rf, stride, pad)
    for row, col in ((0, 0), (30, 41), (55, 55)):
        add = box_from_page_numbers(fields["conv2_block1_add"], row, col, 224)
        for path in ("conv2_block1_0_conv", "conv2_block1_3_conv"):
            inner = box_from_page_numbers(fields[path], row, col, 224)
            assert add[:2] <= inner[:2] and add[2:] >= inner[2:], (row, col, path)
        assert add == box_from_page_numbers(fields["conv2_block1_out"], row, col, 224)


def test_explorer_of_a_sequential_model(photo):
    stack = [
        keras.layers.Conv2D(6, 5, strides=2, activation="relu", name="c1"),
        keras.layers.MaxPooling2D(3, name="p1"),
    ]
    with pytest.raises(ValueError, match="has not been built yet"):
        unit_explorer(keras.Sequential(stack), photo, {}, pd.DataFrame(), ["c1"])
    model = keras.Sequential(stack)
    maps = vggbook.feature_maps(model, vggbook.preprocess(photo))  # builds the model for the photo's size
    table = vggbook.layer_table(model)
    data = payload(unit_explorer(model, photo, maps, table, ["c1", "p1"]))
    fields = [(layer["receptive_field"], layer["stride"], layer["padding"]) for layer in data["layers"]]
    assert fields == [(5, 2, 0), (5 + 2 * 2, 6, 0)]
    assert [layer["height"] for layer in data["layers"]] == [(224 - 5) // 2 + 1, ((224 - 5) // 2 + 1 - 3) // 3 + 1]
