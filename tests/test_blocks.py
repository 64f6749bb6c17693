"""vggbook.blocks (what the block chapters share) and vggbook.responses (gratings, dataset examples)."""

from __future__ import annotations

import keras
import numpy as np
import pandas as pd
import pytest
from keras import layers

import vggbook
from vggbook.blocks import Block


@pytest.fixture(scope="module")
def small_block(vgg16_small_224) -> Block:
    """Block 2 of the width-1/8 VGG16 at 224×224, as `open_block` makes it, without building a full network."""
    model = vgg16_small_224
    photo = vggbook.sample_image("chelsea")
    x = vggbook.preprocess(photo)
    return Block(2, model, photo, x, vggbook.feature_maps(model, x), vggbook.layer_table(model))


def _written(channels: int, block: int = 2, convs: int = 2) -> list[keras.layers.Layer]:
    return [
        *(
            layers.Conv2D(channels, (3, 3), padding="same", activation="relu", name=f"block{block}_conv{c}")
            for c in range(1, convs + 1)
        ),
        layers.MaxPooling2D((2, 2), strides=(2, 2), name=f"block{block}_pool"),
    ]


def test_open_block_builds_the_convolutional_base_once(capsys):
    block = vggbook.open_block(3, weights="random")
    assert block.model.count_params() == 14_714_688  # VGG16 without its head
    assert "random" in capsys.readouterr().out  # the page says which weights it used
    assert block.layers == ["block3_conv1", "block3_conv2", "block3_conv3", "block3_pool"]
    assert block.input_name == "block2_pool" and block.input.shape == (1, 56, 56, 128)
    assert set(block.maps) == set(vggbook.default_layers(block.model))
    with pytest.raises(ValueError, match="blocks 1–5"):
        vggbook.open_block(6)


def test_check_block_accepts_the_block_and_names_a_wrong_layer(small_block, capsys):
    channels = small_block.maps["block2_conv1"].shape[-1]
    block_model = vggbook.check_block(small_block, _written(channels))
    printed = capsys.readouterr().out
    assert "block1_pool" in printed and "(1, 56, 56, 16)" in printed  # the shapes in and out
    np.testing.assert_allclose(block_model(small_block.input), small_block.maps["block2_pool"], atol=1e-5)
    wrong = _written(channels)
    wrong[1] = layers.Conv2D(channels, (5, 5), padding="same", activation="relu", name="block2_conv2")
    with pytest.raises(AssertionError, match=r"block2_conv2.*\(5, 5\)"):
        vggbook.check_block(small_block, wrong)
    with pytest.raises(AssertionError, match="differs"):
        vggbook.check_block(small_block, _written(channels)[:2])


def test_block_cost_adds_up_the_layer_table(small_block):
    block_model = vggbook.check_block(small_block, _written(small_block.maps["block2_conv1"].shape[-1]))
    cost = vggbook.block_cost(small_block, block_model)
    rows = small_block.table.loc[small_block.layers]
    assert cost.params == rows["params"].sum() and cost.macs == rows["macs"].sum()
    assert cost.seconds > 0 and 0 < cost.share_macs < 1
    markdown = cost.table._repr_markdown_()
    assert ":name: tab-block2-cost" in markdown and "MACs (millions)" in markdown
    assert f"**{cost.params:,}**" in cost.summary.data and f"**{cost.seconds * 1000:.0f} ms**" in cost.summary.data
    assert "{" not in cost.summary.data  # every placeholder filled


def test_unit_field_box_is_the_layer_tables(small_block):
    field = vggbook.unit_field(small_block)
    assert field.layer == "block2_pool" and (field.row, field.col) == (28, 28)
    assert field.box == vggbook.receptive_field_box(small_block.table, "block2_pool", 28, 28, 224)
    assert field.size == 16 and field.stride == 4 and field.channels == 16
    assert field.erf.shape == (224, 224) and 1 <= field.effective <= field.inside == 16 * 16
    x0, y0, x1, y1 = field.box  # the gradient lives inside the theoretical field
    inside = field.erf[y0 : y1 + 1, x0 : x1 + 1].sum()
    assert inside == pytest.approx(field.erf.sum(), rel=1e-6)
    heaviest = np.sort(field.erf.ravel())[::-1]  # the effective area: the fewest pixels with 90% of the mass
    assert heaviest[: field.effective].sum() >= 0.9 * heaviest.sum() > heaviest[: field.effective - 1].sum()
    corner = vggbook.unit_field(small_block, "block2_pool", 0, 0)  # its field reaches past the photo's corner
    assert corner.box[:2] == (0, 0) and corner.inside < 16 * 16 and "lie inside the photo" in corner.summary.data
    assert field.plot().get_figwidth() <= vggbook.PAGE_WIDTH
    with pytest.raises(ValueError, match="no map of layer"):
        vggbook.unit_field(small_block, "fc1")


def test_activation_stats_compare_the_block_with_its_input(small_block):
    stats = vggbook.activation_stats(small_block)
    pool = small_block.maps["block2_pool"]
    assert stats.frame.loc["block2_pool", "zeros"] == pytest.approx(np.mean(pool == 0))
    assert stats.frame.loc["block2_pool", "std"] == pytest.approx(pool.std(), rel=1e-5)
    table = stats.table._repr_markdown_()
    assert "| block1_pool |" in table and "standard deviation" in table and "std" not in table
    ratio = stats.frame.loc["block2_pool", "std"] / stats.frame.loc["block1_pool", "std"]
    assert f"{max(ratio, 1 / ratio):.2f}" in stats.summary.data


def test_gratings_are_what_they_say():
    vertical = vggbook.grating(0, 8, size=32)
    assert vertical.shape == (32, 32, 3) and vertical.dtype == np.uint8
    assert np.all(vertical == vertical[:1])  # 0°: stripes vertical, the intensity varies along x only
    assert np.all(vggbook.grating(90, 8, size=32) == vggbook.grating(90, 8, size=32)[:, :1])
    red_green = vggbook.grating(0, 8, contrast="red–green", size=32).astype(int)
    assert np.all(np.abs(red_green[..., 0] + red_green[..., 1] - 255) <= 1)  # red and green in antiphase
    for contrast in vggbook.responses.CONTRASTS:  # the same strength along every colour axis
        image = vggbook.grating(0, 8, contrast=contrast, size=32).astype(float) - 127.5
        assert np.linalg.norm(image, axis=-1).max() == pytest.approx(vggbook.responses.STRENGTH, abs=1)
    with pytest.raises(ValueError, match="unknown contrast"):
        vggbook.grating(0, 8, contrast="purple")


def test_orientation_tuning_finds_a_filter_built_to_prefer_one_orientation():
    # Channel 0: a vertical-edge detector (x-derivative) on all colours; channel 1: a centre-only blob;
    # channel 2: red minus green at the centre, a colour-opponent blob.
    kernel = np.zeros((3, 3, 3, 3), np.float32)
    kernel[:, 0, :, 0], kernel[:, 2, :, 0] = -1.0, 1.0
    kernel[1, 1, :, 1] = 1.0 / 3
    kernel[1, 1, 2, 2], kernel[1, 1, 1, 2] = 1.0, -1.0  # input channels are B, G, R: +R −G
    conv = layers.Conv2D(3, (3, 3), padding="same", activation="relu", name="block1_conv1")
    net = keras.Sequential([keras.Input(shape=(None, None, 3)), conv])
    conv.set_weights([kernel, np.zeros(3, np.float32)])
    tuning = vggbook.orientation_tuning(net, "block1_conv1")
    assert tuning.responses.shape == (3, 3, 12, 5)
    assert tuning.preferred[0] == pytest.approx(0, abs=1) or tuning.preferred[0] == pytest.approx(180, abs=1)
    assert tuning.selectivity[0] == pytest.approx(vggbook.ideal_edge_selectivity())
    assert tuning.selectivity[0] > 0.3 and tuning.selectivity[1] < 0.05
    assert tuning.colour_preference("red–green")[2] > 0.5 > tuning.colour_preference("red–green")[0]
    counts = tuning.counts()
    assert counts["orientation-selective (index ≥ 0.3)"] == 1 and counts["prefer red–green"] == 1
    assert counts["silent"] == 0
    assert vggbook.stimulus_count() == (180, 720)
    table = vggbook.tuning_table({"built": tuning, "again": [tuning, tuning]}, "tab-x", "x")._repr_markdown_()
    assert "| built | 1 |" in table and "| again | 1 (1–1) |" in table


def test_orientation_tuning_refuses_layers_past_the_first_pool(vgg16_small_224):
    with pytest.raises(ValueError, match="first pool"):
        vggbook.orientation_tuning(vgg16_small_224, "block2_conv1")


def test_dataset_examples_find_the_strongest_units_and_their_patches(vgg16_small_224):
    model, table = vgg16_small_224, vggbook.layer_table(vgg16_small_224)
    photos = {name: vggbook.sample_image(name) for name in ("chelsea", "coffee", "rocket")}
    maps = {
        n: vggbook.feature_maps(model, vggbook.preprocess(p), ["block3_conv3"])["block3_conv3"]
        for n, p in photos.items()
    }
    channel = int(vggbook.rank_channels(maps["chelsea"])[0])
    found = vggbook.dataset_examples(model, "block3_conv3", [channel], photos, table, k=4)
    name, row, col, value = found.found[channel][0]
    best = max(maps.items(), key=lambda item: item[1][..., channel].max())
    assert name == best[0] and value == pytest.approx(best[1][..., channel].max())
    assert maps[name][0, row, col, channel] == pytest.approx(value)
    values = [v for *_, v in found.found[channel]]
    assert values == sorted(values, reverse=True) and len(values) == 4
    assert all(p.shape == (40, 40, 3) for p in found.patches[channel])  # block3_conv3's receptive field
    for (name, r, c, _), (top, left, h, w), square in zip(
        found.found[channel], found.inside[channel], found.patches[channel], strict=True
    ):
        x0, y0, x1, y1 = vggbook.receptive_field_box(table, "block3_conv3", r, c, 224)
        assert np.array_equal(square[top : top + h, left : left + w], photos[name][y0 : y1 + 1, x0 : x1 + 1])
    same_photo = [(r, c) for n, r, c, _ in found.found[channel] if n == name]
    for i, (r1, c1) in enumerate(same_photo):  # no two fields of one photo overlap: a whole field (10 units) apart
        assert all(max(abs(r1 - r2), abs(c1 - c2)) >= 10 for r2, c2 in same_photo[i + 1 :])
    assert isinstance(found.silent, pd.Series) and list(found.silent.index) == list(photos)
    assert (found.field, found.apart, found.map_size) == (40, 10, (56, 56))
    assert "at most 36 patches" in found.summary.data  # ceil(56 / 10) ** 2 fields that cannot overlap
    with pytest.raises(ValueError, match="channels must be"):
        vggbook.dataset_examples(model, "block3_conv3", [10_000], photos, table)
