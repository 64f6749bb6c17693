"""vggbook.plotting: one montage image per layer, ranked and scaled per channel; filters, boxes, overlays."""

from __future__ import annotations

import io

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from matplotlib.image import AxesImage

import vggbook


def _one_hot_maps(h: int, w: int, c: int, strengths: np.ndarray) -> np.ndarray:
    """(h, w, c) map whose channel i is zero except one pixel, number i in row-major order,
    of value strengths[i]: after per-channel scaling each tile shows which channel it is."""
    fmap = np.zeros((h * w, c), np.float32)
    fmap[np.arange(c), np.arange(c)] = strengths
    return fmap.reshape(h, w, c)


def _main_image(fig: Figure) -> AxesImage:
    main = fig.axes[0]
    assert len(main.images) == 1, "the montage must be ONE image, not one per channel"
    return main.images[0]


def _renders(fig: Figure) -> bool:
    """Draw the figure for real (layout, colour bar, text) into an in-memory PNG."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue().startswith(b"\x89PNG")


def _tiles(grid: np.ndarray, h: int, w: int, rows: int, cols: int, pad: int) -> list[np.ndarray]:
    """Cut a montage back into its tiles, row-major (skimage.util.montage's layout)."""
    return [
        grid[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w]
        for r in range(rows)
        for c in range(cols)
    ]


def test_montage_is_one_image_with_every_channel():
    strengths = np.arange(1, 65, dtype=np.float32)
    fig = vggbook.plot_feature_maps(_one_hot_maps(8, 8, 64, strengths), "block1_conv1", rank=False)
    assert isinstance(fig, Figure)
    grid = np.asarray(_main_image(fig).get_array(), dtype=float)
    # 64 tiles of 8×8 in an 8×8 grid with 1-pixel gaps
    assert grid.shape == (8 * (8 + 1) + 1, 8 * (8 + 1) + 1)
    tiles = _tiles(grid, 8, 8, 8, 8, 1)
    for i, tile in enumerate(tiles):  # unranked: tile i is channel i, hot at pixel i
        assert np.nanargmax(tile) == i
    title = fig.axes[0].get_title()
    assert "block1_conv1" in title and "8×8×64" in title and "all 64" in title
    assert _renders(fig)


def test_montage_ranks_channels_strongest_first():
    rng = np.random.default_rng(0)
    strengths = rng.permutation(np.arange(1, 37, dtype=np.float32))
    fmap = _one_hot_maps(6, 6, 36, strengths)
    fig = vggbook.plot_feature_maps(fmap, "x")
    grid = np.asarray(_main_image(fig).get_array(), dtype=float)
    tiles = _tiles(grid, 6, 6, 6, 6, 1)
    shown = [int(np.nanargmax(tile)) for tile in tiles]  # which channel each tile is
    assert shown == list(np.argsort(-strengths))
    assert "strongest first" in fig.axes[0].get_title()
    np.testing.assert_array_equal(vggbook.rank_channels(fmap), np.argsort(-strengths))


def test_montage_scales_each_channel_on_its_own():
    rng = np.random.default_rng(1)
    # channels of wildly different scales, one constant (dead) channel
    fmap = rng.random((7, 7, 16)).astype(np.float32) * np.logspace(-3, 3, 16, dtype=np.float32)
    fmap[..., 5] = 0.0
    fig = vggbook.plot_feature_maps(fmap, "block5_pool", rank=False)
    grid = np.asarray(_main_image(fig).get_array(), dtype=float)
    tiles = _tiles(grid, 7, 7, 4, 4, 1)
    for c, tile in enumerate(tiles):
        if c == 5:
            assert np.nanmax(tile) == 0  # a constant channel stays at the bottom of the scale
        else:
            assert np.nanmax(tile) == pytest.approx(1.0) and np.nanmin(tile) == pytest.approx(0.0)
    assert "1 all zero" in fig.axes[0].get_title()
    assert len(fig.axes) == 2  # the montage and its colour bar


def test_montage_of_a_batched_map_and_of_fewer_channels():
    fmap = np.random.default_rng(2).random((1, 14, 14, 512)).astype(np.float32)
    fig = vggbook.plot_feature_maps(fmap, "block4_pool")
    grid = np.asarray(_main_image(fig).get_array())
    assert grid.shape == (23 * 15 + 1, 23 * 15 + 1)  # 512 tiles need a 23×23 grid
    assert "14×14×512" in fig.axes[0].get_title()
    few = vggbook.plot_feature_maps(fmap, "block4_pool", max_channels=16)
    assert np.asarray(_main_image(few).get_array()).shape == (4 * 15 + 1, 4 * 15 + 1)
    assert "16 of 512" in few.axes[0].get_title()


def test_montage_refuses_a_batch_of_several():
    with pytest.raises(ValueError, match="batch of 2"):
        vggbook.plot_feature_maps(np.zeros((2, 4, 4, 3)), "x")
    with pytest.raises(ValueError, match="shape"):
        vggbook.plot_feature_maps(np.zeros((4, 4)), "x")


def test_plot_strongest():
    fmap = _one_hot_maps(5, 5, 10, np.arange(1, 11, dtype=np.float32))
    fig = vggbook.plot_strongest(np.zeros((5, 5, 3), np.uint8), fmap, "block1_conv1", k=3)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles[0] == "input"
    assert [t.split("\n")[0] for t in titles[1:]] == ["block1_conv1 ch 9", "block1_conv1 ch 8", "block1_conv1 ch 7"]


def test_plot_filters_of_the_first_layer():
    kernel = np.zeros((3, 3, 3, 64), np.float32)
    kernel[:, :, 0, 0] = 1.0  # filter 0 reads only input channel 0, which is BLUE in caffe's BGR order
    kernel[:, :, 2, 1] = -1.0  # filter 1: negative on red
    fig = vggbook.plot_filters(kernel)
    grid = np.asarray(_main_image(fig).get_array())
    assert grid.shape == (8 * 4 + 1, 8 * 4 + 1, 3)  # 64 patches of 3×3, 1-pixel gaps
    np.testing.assert_allclose(grid[1:4, 1:4], np.broadcast_to([0.5, 0.5, 1.0], (3, 3, 3)))  # blue patch
    np.testing.assert_allclose(grid[1:4, 5:8], np.broadcast_to([0.0, 0.5, 0.5], (3, 3, 3)))  # no red: cyan
    np.testing.assert_allclose(grid[1:4, 9:12], 0.5)  # a zero filter is grey
    assert "64" in fig.axes[0].get_title()
    assert _renders(fig)


def test_plot_filters_of_a_real_first_layer():
    model = vggbook.build_vgg16(width=0.125, input_shape=(32, 32, 3), include_top=False)
    fig = vggbook.plot_filters(model.get_layer("block1_conv1").get_weights()[0])
    assert np.asarray(_main_image(fig).get_array()).shape == (3 * 4 + 1, 3 * 4 + 1, 3)  # 8 filters, 3×3 grid


def test_plot_filters_refuses_other_kernels():
    with pytest.raises(ValueError, match=r"\(k, k, 3, N\)"):
        vggbook.plot_filters(np.zeros((3, 3, 64, 64)))


def test_receptive_field_boxes(vgg16_small_224):
    table = vggbook.layer_table(vgg16_small_224)
    # block5_pool: field 212, stride 32, padding 90 → unit (0, 0) starts at -90: clipped to the image
    assert vggbook.receptive_field_box(table, "block5_pool", 0, 0, 224) == (0, 0, 121, 121)
    assert vggbook.receptive_field_box(table, "block5_pool", 3, 3, 224) == (6, 6, 217, 217)
    assert vggbook.receptive_field_box(table, "block5_pool", 6, 6, 224) == (102, 102, 223, 223)
    assert vggbook.receptive_field_box(table, "block5_pool", 1, 6, 224) == (102, 0, 223, 153)
    # block1_conv1: a 3×3 window centred on the unit
    assert vggbook.receptive_field_box(table, "block1_conv1", 10, 20, 224) == (19, 9, 21, 11)


def test_draw_box_adds_one_rectangle():
    fig = plt.figure()
    ax = fig.add_subplot()
    ax.imshow(np.zeros((20, 20, 3), np.uint8))
    vggbook.draw_box(ax, (2, 3, 5, 9), label="unit")
    (rect,) = ax.patches
    assert (rect.get_x(), rect.get_y(), rect.get_width(), rect.get_height()) == (1.5, 2.5, 4, 7)
    assert [t.get_text() for t in ax.texts] == ["unit"]


def test_overlay_heatmap():
    image = np.full((50, 60, 3), 100, np.uint8)
    heat = np.zeros((7, 7), np.float32)
    out = vggbook.overlay_heatmap(image, heat)
    assert out.shape == (50, 60, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(vggbook.overlay_heatmap(image, heat, alpha=0.0), image)
    full = vggbook.overlay_heatmap(image, np.ones((7, 7)), alpha=1.0, cmap="gray")
    assert (full == 255).all()  # the top of the grey colormap, everywhere


def test_plot_architecture_draws_every_layer():
    fig = vggbook.plot_architecture("D")
    (ax,) = fig.axes
    labels = [t.get_text() for t in ax.texts]
    assert sum(label.startswith("conv3 ") for label in labels) == 13
    assert sum(label.startswith("pool ") for label in labels) == 5
    assert "pool 7×7×512" in labels and "input 224×224×3" in labels
    assert [f"block {b}" for b in range(1, 6)] == [label for label in labels if label.startswith("block")]
    assert "VGG16" in ax.get_title()
    assert _renders(fig)
    fig_c = vggbook.plot_architecture("C")
    assert sum(t.get_text().startswith("conv1 ") for t in fig_c.axes[0].texts) == 3


def test_backend_is_agg():
    assert matplotlib.get_backend().lower() == "agg"


def _drawn_texts(fig: Figure) -> list[matplotlib.text.Text]:
    """The non-empty texts a reader sees: titles, labels and tick labels of axes that are shown, free texts."""
    texts = list(fig.texts)
    for ax in fig.axes:
        texts += [ax.title, ax._left_title, ax._right_title, *ax.texts]
        if ax.axison:
            texts += [ax.xaxis.label, ax.yaxis.label, *ax.get_xticklabels(), *ax.get_yticklabels()]
    return [t for t in texts if t.get_visible() and t.get_text().strip()]


def _text_outside(fig: Figure) -> list[str]:
    """Draw `fig` and return the texts that stick out of it (a clipped title, a cut-off label)."""
    fig.canvas.draw()
    page = fig.bbox.padded(1)  # one pixel of rounding
    outside = []
    for text in _drawn_texts(fig):
        box = text.get_window_extent()
        if not (page.contains(box.x0, box.y0) and page.contains(box.x1, box.y1)):
            outside.append(text.get_text())
    return outside


@pytest.mark.parametrize(
    "draw",
    [
        lambda: vggbook.plot_feature_maps(np.random.default_rng(0).random((14, 14, 512)), "block5_conv3"),
        lambda: vggbook.plot_feature_maps(np.random.default_rng(0).random((224, 224, 64)), "block1_conv1"),
        lambda: vggbook.plot_feature_maps(np.random.default_rng(0).random((8, 8, 3)), "x"),
        lambda: vggbook.plot_strongest(np.zeros((224, 224, 3), np.uint8), np.ones((14, 14, 512)), "block5_conv3"),
        lambda: vggbook.plot_filters(np.ones((3, 3, 3, 64))),
        lambda: vggbook.plot_architecture("E"),
    ],
    ids=["montage-512", "montage-64", "montage-3", "strongest", "filters", "architecture"],
)
def test_figures_fit_the_page(draw):
    # The site shows a figure at most PAGE_WIDTH inches wide at its own size; a wider one is scaled down and
    # its labels with it. Nothing may be cut off at the figure's edge, and no label may be tiny.
    fig = draw()
    assert fig.get_figwidth() <= vggbook.PAGE_WIDTH
    assert _text_outside(fig) == []
    assert min(t.get_fontsize() for t in _drawn_texts(fig)) >= 6.5


def test_text_outside_catches_a_clipped_title():
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.set_axis_off()
    ax.set_title("a title much too long for a two-inch figure to hold")
    assert _text_outside(fig) == ["a title much too long for a two-inch figure to hold"]


def test_figures_draw_into_panels_of_one_figure():
    # The training chapter compares before and after in one figure: each helper draws into a subfigure.
    fig = plt.figure(figsize=(vggbook.PAGE_WIDTH, 4), layout="constrained")
    left, right = fig.subfigures(1, 2)
    assert vggbook.plot_feature_maps(np.ones((8, 8, 16)), "before", fig=left) is left
    assert vggbook.plot_filters(np.ones((3, 3, 3, 8)), "after", fig=right) is right
    assert len(left.axes) == 2 and len(right.axes) == 1  # montage + colour bar; filters
    strongest = plt.figure(figsize=(vggbook.PAGE_WIDTH, 3))
    vggbook.plot_strongest(np.zeros((8, 8, 3), np.uint8), np.ones((8, 8, 16)), "x", k=2, fig=strongest)
    assert [ax.get_title().split("\n")[0] for ax in strongest.axes if ax.get_title()][0] == "input"
    assert len([ax for ax in strongest.axes if ax.images]) == 3  # photo and two channels, one row
    assert _renders(fig) and _renders(strongest)
    plt.close("all")


def test_numbered_table_as_myst_and_as_html():
    frame = pd.DataFrame(
        {"params": [1792, 36928], "share": [0.1, 0.25], "shape": [(224, 224, 64), (112, 112, 64)]},
        index=pd.Index(["block1_conv1", "a|b"], name="layer"),
    )
    caption = "What `block1` costs."  # `code` in a caption: the fence must be one of tildes
    table = vggbook.numbered_table(frame, "tab-cost", caption, {"params": "{:,}", "share": "{:.1%}"})
    assert table._repr_markdown_().splitlines() == [
        "~~~{table} What `block1` costs.",
        ":name: tab-cost",
        "",
        "| layer | params | share | shape |",
        "|:--|--:|--:|:--|",  # numbers right-aligned
        "| block1_conv1 | 1,792 | 10.0% | (224, 224, 64) |",
        "| a\\|b | 36,928 | 25.0% | (112, 112, 64) |",  # a "|" in a cell does not split it
        "~~~",
    ]
    html = table._repr_html_()
    assert "<caption>What `block1` costs.</caption>" in html and "36,928" in html and "25.0%" in html


def test_numbered_table_refuses_bad_input():
    with pytest.raises(TypeError, match="DataFrame"):
        vggbook.numbered_table([[1, 2]], "tab-x", "x")
    with pytest.raises(ValueError, match=r"unknown column\(s\) \['param'\]"):
        vggbook.numbered_table(pd.DataFrame({"params": [1]}), "tab-x", "x", {"param": "{:,}"})


def test_layer_table_view_reads_like_a_book(vgg16_full):
    table = vggbook.layer_table(vgg16_full)
    view = vggbook.layer_table_view(table, "tab-layers", "Every layer.", columns=tuple(vggbook.plotting.LAYER_HEADERS))
    lines = view._repr_markdown_().splitlines()
    header = [cell.strip() for cell in lines[3].strip("|").split("|")]
    assert header[0] == "layer" and all("_" not in h for h in header), header  # words, not column names
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")] for line in lines[5:-1]}
    conv = dict(zip(header, rows["block1_conv2"], strict=True))
    assert conv["output"] == "224×224×64" and conv["parameters"] == "36,928"
    assert conv["MACs (millions)"] == "1,849.7" and conv["activations (KiB)"] == "12,544"
    assert conv["receptive field (px)"] == "5" and conv["effective padding (px)"] == "2"
    fc1 = dict(zip(header, rows["fc1"], strict=True))
    assert fc1["parameters"] == "102,764,544" and fc1["receptive field (px)"] == "–"
    assert dict(zip(header, rows["block5_pool"], strict=True))["receptive field (px)"] == "212"
    with pytest.raises(ValueError, match="unknown layer-table column"):
        vggbook.layer_table_view(table, "tab-x", "x", columns=("macs", "flops"))


def test_numbered_table_shows_counts_as_integers_and_gaps_as_dashes():
    frame = pd.DataFrame({"parameters": [123_642_856, 0], "share": [0.5, None]}, index=["head", "pool"])
    lines = vggbook.numbered_table(frame, "tab-x", "x")._repr_markdown_().splitlines()
    assert lines[-3] == "| head | 123,642,856 | 0.5 |" and lines[-2] == "| pool | 0 | – |"
    assert vggbook.plotting.amount(12544.0) == "12,544" and vggbook.plotting.amount(1849.688) == "1,849.7"


def test_montage_title_of_a_map_with_negative_values():
    # A convolution without its ReLU (ResNet's last convolution of a block, chapter "your_model") has negative
    # values: a channel that is never positive is not "all zero" there.
    fmap = np.random.default_rng(0).normal(size=(6, 6, 5)).astype(np.float32)
    fmap[..., 1] = -np.abs(fmap[..., 1]) - 0.1
    fmap[..., 3] = -np.abs(fmap[..., 3]) - 0.1
    fig = vggbook.plot_feature_maps(fmap, "raw")
    assert fig.axes[0].get_title().endswith("channels, strongest first; 2 never positive")
    relu = vggbook.plot_feature_maps(np.maximum(fmap, 0), "relu")
    assert relu.axes[0].get_title().endswith("channels, strongest first; 2 all zero")


def test_figures_of_the_photo_take_a_photo_object_as_its_image():
    cat = vggbook.photo("chelsea")
    heat = np.linspace(0, 1, 49, dtype=np.float32).reshape(7, 7)
    np.testing.assert_array_equal(vggbook.overlay_heatmap(cat, heat), vggbook.overlay_heatmap(cat.image, heat))
    fmap = np.random.default_rng(0).random((1, 14, 14, 6), dtype=np.float32)
    fig = vggbook.plot_strongest(cat, fmap, "x", k=2)
    np.testing.assert_array_equal(fig.axes[0].get_images()[0].get_array(), cat.image)
