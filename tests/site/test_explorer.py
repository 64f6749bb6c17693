"""The unit explorer (vggbook.explorer, issue 12) in headless Chromium, offline, read from the page's DOM.

(a) A standalone page with two explorers of a small VGG16 (width 1/8; block 1 and block 5), styled by the
    book theme's own stylesheet: pointing at a unit draws `receptive_field_box`'s box, the arrow keys move
    the unit, layer and channel change the map and the readout, the values and colours are the network's,
    block1_conv1's computation is NumPy's, the text is readable in light and dark mode, no JavaScript error.
    Needs no built site.
(b) The built book's block pages (`book/block1` … `book/block5` of its `_toc.yml`): one explorer each, whose
    boxes are the layer table's for every layer, whose layer and channel change what is shown, with no
    JavaScript error.

Fixtures `browser`, `server` and `source`: tests/site/conftest.py. Every request not to 127.0.0.1 is blocked.
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import yaml
from local import served
from quality import axe_violations, watch

import vggbook
from vggbook.explorer import unit_explorer

BLOCK1 = ["block1_conv1", "block1_conv2", "block1_pool"]
BLOCK5 = ["block5_conv1", "block5_conv2", "block5_conv3", "block5_pool"]
COLUMN = 688  # the book's text column at a 1280-pixel window
VIRIDIS = np.round(matplotlib.colormaps["viridis"](np.linspace(0, 1, 256))[:, :3] * 255).astype(int)

# What the page shows for one explorer: its state attributes, the box's rectangle, the readout, the map.
READ = """(root) => {
  const box = root.querySelector("rect.vgg-explorer-box");
  const canvas = root.querySelector(".vgg-explorer-map canvas");
  const conv = root.querySelector(".vgg-explorer-conv");
  const result = root.querySelector(".vgg-explorer-conv-result");
  return {
    ...root.dataset,
    rect: ["x", "y", "width", "height"].map((k) => Number(box.getAttribute(k))),
    viewBox: box.ownerSVGElement.getAttribute("viewBox"),
    readout: root.querySelector(".vgg-explorer-readout").textContent,
    map: [canvas.width, canvas.height, canvas.toDataURL()],
    top: Array.from(root.querySelectorAll(".vgg-explorer-top button")).map((b) => b.dataset.channel),
    conv_shown: !!conv && !conv.hidden,
    conv: result ? { ...result.dataset } : null,
    padding_cells: conv ? conv.querySelectorAll(".vgg-explorer-pad").length : 0,
    grids: conv ? Array.from(conv.querySelectorAll(".vgg-explorer-grid")).map(
      (g) => Array.from(g.children).map((c) => Number(c.textContent))) : [],
  };
}"""

# Every RGBA value of a canvas, read from a copy made for reading: reading the explorer's own canvas again and again
# makes Chromium warn in the console ("Multiple readback operations using getImageData are faster with the
# willReadFrequently attribute"), a message of the test's, not of the page's.
PIXELS = """(canvas) => {
  const copy = document.createElement("canvas");
  [copy.width, copy.height] = [canvas.width, canvas.height];
  const context = copy.getContext("2d", { willReadFrequently: true });
  context.drawImage(canvas, 0, 0);
  return Array.from(context.getImageData(0, 0, copy.width, copy.height).data);
}"""

# Contrast (WCAG 2) of an element's text against the first opaque background behind it.
CONTRAST = """(el) => {
  const parse = (c) => c.match(/[\\d.]+/g).map(Number);
  const luminance = ([r, g, b]) => {
    const f = (v) => ((v /= 255) <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  let background = [255, 255, 255];
  for (let node = el; node && node.nodeType === 1; node = node.parentElement) {
    const c = parse(getComputedStyle(node).backgroundColor);
    if (c.length < 4 || c[3] > 0) { background = c; break; }
  }
  const text = parse(getComputedStyle(el).color);
  const [light, dark] = [luminance(text), luminance(background)].sort((a, b) => b - a);
  return { ratio: (light + 0.05) / (dark + 0.05), text: luminance(text), background: luminance(background) };
}"""


# ---- helpers


def open_page(browser, url: str):
    """A new tab on `url`, offline; returns it and the list its JavaScript errors, console errors and warnings and
    blocked requests go to (tests/site/quality.py: `watch`)."""
    problems: list[str] = []
    page = browser.new_page()
    watch(page, problems)
    page.goto(url, wait_until="load")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.vgg-explorer')].every((r) => r.dataset.ready === 'true')"
    )
    return page, problems


def read(root) -> dict:
    return root.evaluate(READ)


def point_at(page, root, row: int, col: int) -> dict:
    """Move the mouse to the centre of unit (row, col)'s pixel of the map canvas; what the page then shows."""
    canvas = root.locator(".vgg-explorer-map canvas")
    canvas.evaluate("(c) => c.scrollIntoView({ block: 'center' })")
    width, height = canvas.evaluate("(c) => [c.width, c.height]")
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + (col + 0.5) * box["width"] / width, box["y"] + (row + 0.5) * box["height"] / height)
    return read(root)


def choose(root, which: str, value: str) -> dict:
    root.locator(f"select.vgg-explorer-{which}").select_option(value)
    return read(root)


def rect_of(table, layer: str, row: int, col: int) -> list[int]:
    """The SVG rectangle (x, y, width, height) of the inclusive box `receptive_field_box` gives."""
    x0, y0, x1, y1 = vggbook.receptive_field_box(table, layer, row, col, 224)
    return [x0, y0, x1 - x0 + 1, y1 - y0 + 1]


def units(height: int, width: int) -> list[tuple[int, int]]:
    """Corners, centre, an edge unit and an off-centre one."""
    return [
        (0, 0),
        (height - 1, width - 1),
        (0, width - 1),
        (height // 2, width // 2),
        (height - 1, 1),
        (1, width // 3),
    ]


def check_boxes(page, root, table, layer: str) -> None:
    """Pointing at units of `layer` selects them and draws their receptive-field boxes."""
    height, width = read(root)["map"][1], read(root)["map"][0]
    for row, col in units(height, width):
        shown = point_at(page, root, row, col)
        assert (shown["layer"], int(shown["row"]), int(shown["col"])) == (layer, row, col)
        assert shown["rect"] == rect_of(table, layer, row, col), f"{layer} unit ({row}, {col})"
        x0, y0, x1, y1 = vggbook.receptive_field_box(table, layer, row, col, 224)
        assert shown["box"] == f"{x0} {y0} {x1} {y1}"
        assert f"x {x0}–{x1}, y {y0}–{y1}" in shown["readout"]


def check_contrast(root, theme: str) -> list[float]:
    """Contrast of every kind of text of the explorer; the page's theme set to `theme` first."""
    root.page.evaluate(f"document.documentElement.dataset.theme = {theme!r}")
    texts = [
        "p.vgg-explorer-readout",
        "p.vgg-explorer-note",
        ".vgg-explorer-caption",
        "label",
        "select",
        ".vgg-explorer-top button",
    ]
    found = []
    for selector in texts:
        result = root.locator(selector).first.evaluate(CONTRAST)
        assert result["ratio"] >= 4.5, f"{theme} mode: {selector} has contrast {result['ratio']:.2f} (< 4.5)"
        found.append(result)
    readout = found[0]
    if theme == "dark":
        assert readout["text"] > readout["background"], "dark mode: light text on a dark background"
    else:
        assert readout["text"] < readout["background"], "light mode: dark text on a light background"
    return [r["ratio"] for r in found]


# ---- (a) a standalone page


@pytest.fixture(scope="module")
def small(vgg16_small_224):
    photo = vggbook.sample_image("chelsea")
    maps = vggbook.feature_maps(vgg16_small_224, vggbook.preprocess(photo))
    return vgg16_small_224, photo, maps, vggbook.layer_table(vgg16_small_224)


@pytest.fixture(scope="module")
def standalone(small, tmp_path_factory) -> Iterator[str]:
    """A page with two explorers (block 1 and block 5 of the small model) and the book theme's stylesheet,
    served on 127.0.0.1; yields its URL."""
    model, photo, maps, table = small
    folder = tmp_path_factory.mktemp("explorer-page")
    theme = files("pydata_sphinx_theme").joinpath("theme/pydata_sphinx_theme/static/styles/pydata-sphinx-theme.css")
    (folder / "theme.css").write_text(theme.read_text(encoding="utf-8"), encoding="utf-8")
    first = unit_explorer(model, photo, maps, table, BLOCK1)
    second = unit_explorer(model, photo, maps, table, BLOCK5)
    (folder / "index.html").write_text(
        '<!doctype html>\n<html lang="en" data-theme="light"><head><meta charset="utf-8"><title>Unit explorer</title>'
        '<link rel="stylesheet" href="theme.css"></head>\n<body><main><h1>Block 1</h1>\n'
        f"{first.html}\n<h1>Block 5</h1>\n{second.html}</main></body></html>\n",
        encoding="utf-8",
    )
    with served(folder) as base:
        yield f"{base}/index.html"


@pytest.fixture
def explorer_page(browser, standalone):
    """The standalone page in a new tab, and its list of JavaScript errors; the tab is closed afterwards."""
    page, problems = open_page(browser, standalone)
    yield page, problems
    page.close()


def test_pointing_at_a_unit_draws_its_receptive_field(explorer_page, small):
    page, problems = explorer_page
    model, photo, maps, table = small
    roots = page.locator(".vgg-explorer")
    assert roots.count() == 2
    ids = roots.evaluate_all("(rs) => rs.map((r) => r.id)")
    assert len(set(ids)) == 2, f"explorers on one page need their own ids: {ids}"
    for root, names in ((roots.nth(0), BLOCK1), (roots.nth(1), BLOCK5)):
        options = root.locator("select.vgg-explorer-layer option").evaluate_all("(os) => os.map((o) => o.value)")
        assert options == names
        for layer in names:
            shown = choose(root, "layer", layer)
            assert shown["viewBox"] == "0 0 224 224"
            check_boxes(page, root, table, layer)
            # the value shown is the network's, within half a quantisation step
            shown = read(root)
            true = maps[layer][0, :, :, int(shown["channel"])]
            value = true[int(shown["row"]), int(shown["col"])]
            half_step = float(true.max() - true.min()) / 510
            assert float(shown["value"]) == pytest.approx(float(value), abs=half_step * 1.0001 + 1e-6)
    # the second explorer kept its own state while the first was used
    assert read(roots.nth(0))["layer"] == BLOCK1[-1]
    # a tap (pointer events from a touch screen) picks a unit too
    root = roots.nth(0)
    choose(root, "layer", "block1_conv1")
    canvas = root.locator(".vgg-explorer-map canvas")
    box = canvas.bounding_box()
    x, y = box["x"] + 10.5 * box["width"] / 224, box["y"] + 20.5 * box["height"] / 224
    canvas.dispatch_event("pointerdown", {"clientX": x, "clientY": y, "pointerType": "touch", "isPrimary": True})
    assert (int(read(root)["row"]), int(read(root)["col"])) == (20, 10)
    assert not problems, problems


def test_map_shows_the_network_values_in_viridis(explorer_page, small):
    page, problems = explorer_page
    model, photo, maps, table = small
    root = page.locator(".vgg-explorer").first
    for layer in ("block1_conv2", "block1_pool"):
        shown = choose(root, "layer", layer)
        channel = int(shown["channel"])
        assert channel == vggbook.rank_channels(maps[layer])[0], "the strongest channel first"
        true = maps[layer][0, :, :, channel]
        low, high = true.min(), true.max()
        pixels = np.array(root.locator(".vgg-explorer-map canvas").evaluate(PIXELS), dtype=int)
        pixels = pixels.reshape(*true.shape, 4)
        for row, col in units(*true.shape):
            colour = list(pixels[row, col, :3])
            step = (true[row, col] - low) / (high - low) * 255
            nearest = [int(np.floor(step)), int(np.ceil(step))]  # the stored step, rounded either way
            assert any(list(VIRIDIS[s]) == colour for s in nearest), f"{layer} ({row}, {col}): {colour}"
    assert not problems, problems


def test_arrow_keys_move_the_unit_and_the_box(explorer_page, small):
    page, problems = explorer_page
    model, photo, maps, table = small
    root = page.locator(".vgg-explorer").first
    choose(root, "layer", "block1_pool")
    root.locator("select.vgg-explorer-channel").focus()
    page.keyboard.press("Tab")  # the next stop after the channel menu is the map
    focused = page.evaluate(
        "() => { const a = document.activeElement; const s = getComputedStyle(a);"
        " return [a.className, s.outlineStyle, parseFloat(s.outlineWidth)]; }"
    )
    assert "vgg-explorer-map" in focused[0]
    assert focused[1] != "none" and focused[2] >= 2, f"no visible focus ring: {focused}"
    start = read(root)
    row, col = int(start["row"]), int(start["col"])
    scrolled = page.evaluate("() => window.scrollY")
    for key, (d_row, d_col) in (
        ("ArrowRight", (0, 1)),
        ("ArrowDown", (1, 0)),
        ("Shift+ArrowLeft", (0, -8)),
        ("ArrowUp", (-1, 0)),
    ):
        page.keyboard.press(key)
        row, col = row + d_row, col + d_col
        shown = read(root)
        assert (int(shown["row"]), int(shown["col"])) == (row, col), key
        assert shown["rect"] == rect_of(table, "block1_pool", row, col), key
    assert page.evaluate("() => window.scrollY") == scrolled, "the arrows moved the page instead of only the unit"
    for _ in range(20):  # stops at the edge
        page.keyboard.press("Shift+ArrowUp")
    shown = read(root)
    assert int(shown["row"]) == 0 and shown["rect"] == rect_of(table, "block1_pool", 0, col)
    assert not problems, problems


def test_layer_and_channel_change_the_map_and_the_readout(explorer_page, small):
    page, problems = explorer_page
    model, photo, maps, table = small
    root = page.locator(".vgg-explorer").first
    before = read(root)
    assert before["layer"] == "block1_conv1" and before["map"][:2] == [224, 224]
    after = choose(root, "layer", "block1_pool")
    assert after["layer"] == "block1_pool" and after["map"][:2] == [112, 112]
    assert after["readout"] != before["readout"] and "block1_pool" in after["readout"]
    ranking = [str(c) for c in vggbook.rank_channels(maps["block1_pool"])]
    options = root.locator("select.vgg-explorer-channel option").evaluate_all("(os) => os.map((o) => o.value)")
    assert options == ranking, "every channel of the small model, strongest first"
    second = choose(root, "channel", ranking[1])
    assert second["channel"] == ranking[1]
    assert second["map"][2] != after["map"][2], "the map did not change with the channel"
    assert second["readout"] != after["readout"] and f"channel {ranking[1]}," in second["readout"]
    # the strongest channels at the unit, as buttons: the first is the largest value there
    fmap = maps["block1_pool"][0]
    here = fmap[int(second["row"]), int(second["col"])]
    two_half_steps = float((fmap.max(axis=(0, 1)) - fmap.min(axis=(0, 1))).max()) / 255  # stored values' error
    assert float(here[int(second["top"][0])]) == pytest.approx(float(here.max()), abs=two_half_steps + 1e-6)
    pick = second["top"][-1]
    root.locator(f".vgg-explorer-top button[data-channel='{pick}']").click()
    picked = read(root)
    assert picked["channel"] == pick and root.locator("select.vgg-explorer-channel").input_value() == pick
    assert not problems, problems


def test_block1_computation_is_the_numpy_convolution(explorer_page, small):
    page, problems = explorer_page
    model, photo, maps, table = small
    kernel, bias = model.get_layer("block1_conv1").get_weights()
    # the chapter's NumPy recomputation, before the ReLU
    x = vggbook.preprocess(photo)
    windows = np.lib.stride_tricks.sliding_window_view(np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))), (3, 3), axis=(1, 2))
    before_relu = (np.einsum("nhwcij,ijco->nhwo", windows, kernel) + bias)[0]
    root = page.locator(".vgg-explorer").first
    assert choose(root, "layer", "block1_conv1")["conv_shown"]
    for channel in [str(c) for c in vggbook.rank_channels(maps["block1_conv1"])[:3]]:
        choose(root, "channel", channel)
        for row, col in units(224, 224):
            shown = point_at(page, root, row, col)
            assert (int(shown["row"]), int(shown["col"])) == (row, col)
            conv = {key: float(value) for key, value in shown["conv"].items()}
            c = int(channel)
            assert conv["pre"] == pytest.approx(before_relu[row, col, c], rel=1e-4, abs=1e-3)
            assert conv["sum"] + conv["bias"] == pytest.approx(conv["pre"], rel=1e-12, abs=1e-9)
            assert conv["value"] == pytest.approx(maps["block1_conv1"][0, row, col, c], rel=1e-4, abs=1e-3)
            assert conv["value"] == max(conv["pre"], 0.0)
            # the window as shown: 0 outside the photo (5 of 9 cells per colour at a corner)
            outside = sum(not (0 <= row + i < 224 and 0 <= col + j < 224) for i in (-1, 0, 1) for j in (-1, 0, 1))
            assert shown["padding_cells"] == 3 * outside
            window_b = windows[0, row, col, 0]  # the blue input channel, 3×3, as the page's first grid
            np.testing.assert_allclose(shown["grids"][0], window_b.ravel(), rtol=1e-3, atol=1e-2)
            np.testing.assert_allclose(shown["grids"][1], kernel[:, :, 0, c].ravel(), rtol=1e-2, atol=1e-4)
    assert not choose(root, "layer", "block1_conv2")["conv_shown"], "only block1_conv1 spells out its sums"
    assert not problems, problems


def test_readable_in_light_and_dark_mode_and_never_wider_than_the_column(explorer_page, tmp_path):
    page, problems = explorer_page
    root = page.locator(".vgg-explorer").first
    for theme in ("light", "dark"):
        check_contrast(root, theme)
        root.screenshot(path=str(tmp_path / f"explorer-{theme}.png"))
    layout = root.evaluate(
        "(r) => [r.getBoundingClientRect().width, r.scrollWidth - r.clientWidth,"
        " getComputedStyle(r.querySelector('.vgg-explorer-map canvas')).imageRendering]"
    )
    assert layout[0] <= COLUMN and layout[1] <= 0, f"width {layout[0]} px, {layout[1]} px overflow"
    assert layout[2] == "pixelated"
    assert not problems, problems


def test_explorer_passes_axe_in_light_and_dark_mode(explorer_page):
    # axe-core on the two explorers alone: every rule of WCAG 2.0 and 2.1, A and AA (tests/site/quality.py).
    page, problems = explorer_page
    loaded = list(problems)  # before axe runs (it fetches the stylesheets again)
    for theme in ("light", "dark"):
        page.evaluate(f"document.documentElement.dataset.theme = {theme!r}")
        found = axe_violations(page, ".vgg-explorer")
        assert not found, f"{theme} mode: " + "\n".join(found)
    assert not loaded, loaded


# ---- (b) the built book's block pages


@pytest.fixture(scope="module")
def structure():
    """VGG16's layer table (structure only: zero weights) and each block's layer names."""
    model = vggbook.build_vgg16(include_top=False, kernel_initializer="zeros")
    return vggbook.layer_table(model), {
        b: [layer.name for layer in vggbook.block_layers(model, b)] for b in range(1, 6)
    }


@pytest.mark.parametrize("block", [1, 2, 3, 4, 5], ids=lambda b: f"block{b}")
def test_block_page_has_a_working_explorer(block: int, server: str, browser, source: Path, structure) -> None:
    entry = f"book/block{block}"
    toc = yaml.safe_load((source / "_toc.yml").read_text())
    chapters = [c["file"] for part in toc.get("parts", []) for c in part.get("chapters", [])]
    if entry not in chapters:
        pytest.skip(f"{entry} is not in this book's _toc.yml")
    table, layers = structure
    page, problems = open_page(browser, f"{server}/{entry}.html")
    try:
        roots = page.locator(".vgg-explorer")
        assert roots.count() == 1, f"{entry}: {roots.count()} unit explorers, expected exactly one"
        root = roots.first
        options = root.locator("select.vgg-explorer-layer option").evaluate_all("(os) => os.map((o) => o.value)")
        assert options == layers[block], f"{entry}: the explorer shows {options}"
        column = page.locator("article.bd-article").evaluate("(a) => a.getBoundingClientRect().width")
        assert root.evaluate("(r) => r.getBoundingClientRect().width") <= min(column, COLUMN) + 0.5
        for layer in layers[block]:
            choose(root, "layer", layer)
            check_boxes(page, root, table, layer)
            before = read(root)
            channels = root.locator("select.vgg-explorer-channel option").evaluate_all("(os) => os.map((o) => o.value)")
            assert len(channels) >= min(16, int(table.loc[layer, "output_shape"][-1]))
            other = channels[1] if before["channel"] == channels[0] else channels[0]
            after = choose(root, "channel", other)
            assert after["channel"] == other != before["channel"]
            assert after["readout"] != before["readout"]
            assert after["map"][2] != before["map"][2], f"{entry} {layer}: the map did not change with the channel"
        for theme in ("dark", "light"):
            check_contrast(root, theme)
            # around the explorer, the page's own background: no light frame on a dark page
            around = root.evaluate(f"(r) => ({CONTRAST})(r.parentElement)")["background"]
            inside = root.locator("p.vgg-explorer-readout").evaluate(CONTRAST)["background"]
            assert abs(around - inside) < 0.05, f"{entry}, {theme} mode: the explorer sits in a frame of another colour"
        assert not problems, f"{entry}: {problems}"
    finally:
        page.close()
