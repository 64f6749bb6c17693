"""vggbook.blocks (what the block chapters share) and vggbook.responses (gratings, dataset examples)."""

from __future__ import annotations

from types import SimpleNamespace

import keras
import numpy as np
import pandas as pd
import pytest
from keras import layers

import vggbook
from vggbook.blocks import KEPT_ROWS, Block, BlockKeeps
from vggbook.inversion import Reconstruction


def _search(drop: float, kept: pd.Series | None = None, layer: str = "block1_pool") -> SimpleNamespace:
    """A stand-in for a `Reconstruction`: its late fall, and `settled` by the class's own property."""
    found = SimpleNamespace(kept=kept, late_drop=drop, late_steps=3, steps=15, layer=layer)
    found.settled = Reconstruction.settled.fget(found)
    return found


@pytest.fixture(scope="module")
def small_block(vgg16_small_224) -> Block:
    """Block 2 of the width-1/8 VGG16 at 224×224, as `open_block` makes it, without building a full network."""
    model = vgg16_small_224
    photo = vggbook.sample_image("chelsea")
    x = vggbook.preprocess(photo)
    return Block(2, model, photo, x, vggbook.feature_maps(model, x), vggbook.layer_table(model), "chelsea")


def _written(channels: int, block: int = 2, convs: int = 2) -> list[keras.layers.Layer]:
    return [
        *(
            layers.Conv2D(channels, (3, 3), padding="same", activation="relu", name=f"block{block}_conv{c}")
            for c in range(1, convs + 1)
        ),
        layers.MaxPooling2D((2, 2), strides=(2, 2), name=f"block{block}_pool"),
    ]


def test_open_block_builds_the_convolutional_base_once(capsys):
    block = vggbook.open_block(3, weights="random")  # the photo: vggbook.photo()'s default, the cat
    assert block.model.count_params() == 14_714_688  # VGG16 without its head
    assert "random" in capsys.readouterr().out  # the page says which weights it used
    assert block.layers == ["block3_conv1", "block3_conv2", "block3_conv3", "block3_pool"]
    assert block.input_name == "block2_pool" and block.input.shape == (1, 56, 56, 128)
    assert set(block.maps) == set(vggbook.default_layers(block.model))
    default = vggbook.photo()
    assert block.photo_name == default.name and np.array_equal(block.photo, default.image)
    with pytest.raises(ValueError, match="blocks 1–5"):
        vggbook.open_block(6)


def test_open_block_takes_a_photo_object_an_array_or_a_name_and_refuses_anything_else():
    from vggbook.blocks import _photo

    coffee = vggbook.sample_image("coffee")
    read = vggbook.photo("coffee")
    given = SimpleNamespace(image=coffee, name="my coffee")  # anything with .image and .name, as a Photo
    for photo, name in ((read, read.name), (given, "my coffee"), (coffee, "the photo"), ("coffee", read.name)):
        image, found = _photo(photo)
        assert np.array_equal(image, coffee) and found == name
    for wrong in (coffee[:100], coffee.astype(np.float32), SimpleNamespace(image=coffee[..., 0], name="grey")):
        with pytest.raises(ValueError, match=r"RGB uint8 of shape \(224, 224, 3\).*vggbook\.photo"):
            vggbook.open_block(2, wrong)  # refused before any network is built
    with pytest.raises(ValueError, match=r"\(224, 224, 3\)"):  # a Photo cropped to another size
        vggbook.open_block(2, vggbook.photo("coffee", size=96))


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
    cost = vggbook.block_cost(small_block)
    rows = small_block.table.loc[small_block.layers]
    assert cost.params == rows["params"].sum() and cost.macs == rows["macs"].sum()
    base = small_block.table[small_block.table.index.str.startswith("block")]
    assert cost.share_macs == pytest.approx(cost.macs / base["macs"].sum()) and 0 < cost.share_macs < 1
    markdown = cost.table._repr_markdown_()
    assert ":name: tab-block2-cost" in markdown and "MACs (millions)" in markdown
    share = rows["macs"]["block2_conv2"] / cost.macs  # block 2's costliest layer: its second convolution
    assert f"`block2_conv2`, does **{share:.0%}**" in cost.summary.data
    assert f"**{cost.share_params:.1%}**" in cost.summary.data and "{" not in cost.summary.data


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
    assert corner.box[:2] == (0, 0) and corner.inside < 16 * 16 and "of them on the photo" in corner.summary.data
    assert f"**{field.effective:,}** of its 256 pixels" in field.summary.data
    assert vggbook.unit_field(small_block).erf is field.erf  # one gradient per position, kept by the block
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
    assert "at most 36 that do not overlap" in found.summary.data  # ceil(56 / 10) ** 2 fields that cannot overlap
    silent = round(found.silent["chelsea"] * found.total_channels)  # the first photo is the page's
    assert f"On chelsea, **{silent}** of the" in found.summary.data
    with pytest.raises(ValueError, match="channels must be"):
        vggbook.dataset_examples(model, "block3_conv3", [10_000], photos, table)


def test_maps_summary_counts_the_silent_channels_of_each_layer(small_block):
    text = vggbook.maps_summary(small_block).data
    for name in small_block.layers:
        silent = int(np.sum(small_block.maps[name][0].max(axis=(0, 1)) <= 0))
        assert f"{silent} in `{name}`" in text
    strongest = small_block.maps["block2_conv2"][0].mean(axis=(0, 1)).max()
    assert f"**{strongest:.3g}**" in text


def test_compare_blocks_measures_the_block_beside_the_one_before(small_block):
    change = vggbook.compare_blocks(small_block)
    before, after = change.before, change.after
    assert (before.number, after.number) == (1, 2)
    table = small_block.table
    for profile in (before, after):
        names = [f"block{profile.number}_conv1", f"block{profile.number}_conv2", f"block{profile.number}_pool"]
        assert profile.params == table.loc[names, "params"].sum() and profile.macs == table.loc[names, "macs"].sum()
        assert profile.memory == table.loc[names, "activation_bytes"].sum()
        assert profile.field == table.loc[names[-1], "receptive_field"] and profile.convolutions == 2
        assert profile.zeros == pytest.approx(np.mean(small_block.maps[names[-1]] == 0))
        assert profile.effective == vggbook.unit_field(small_block, names[-1]).effective
    assert (before.side, after.side, before.channels * 2) == (224, 112, after.channels)
    markdown = change.table._repr_markdown_()
    assert ":name: tab-block2-adds" in markdown and "Block 2 beside block 1" in markdown
    assert "| block 1 | block 2 | change |" in markdown
    assert f"| parameters | {before.params:,} | {after.params:,} | ×{after.params / before.params:.2g} |" in markdown
    summary = change.summary.data
    assert "half the side of block 1's" in summary and "twice the channels" in summary
    assert f"from {before.field} to **{after.field}** px" in summary and "{" not in summary
    assert f"Against block 1 it has {vggbook.blocks._factor(after.params / before.params)} parameters" in summary
    assert "on this machine" not in summary and "(ms)" not in markdown
    first = vggbook.compare_blocks(_with_number(small_block, 1))
    assert first.before.label == "input" and first.before.channels == 3 and first.after.number == 1
    assert "Block 1 beside the photograph" in first.table._repr_markdown_()


def _with_number(block: Block, number: int) -> Block:
    return Block(number, block.model, block.photo, block.x, block.maps, block.table, block.photo_name)


def _with_photo(block: Block, photo: np.ndarray, name: str) -> Block:
    x = vggbook.preprocess(photo)
    return Block(block.number, block.model, photo, x, vggbook.feature_maps(block.model, x), block.table, name)


def test_compare_all_sets_the_five_blocks_side_by_side(small_block):
    block5 = _with_number(small_block, 5)
    five = vggbook.compare_all(block5, rebuild=True)
    assert [p.number for p in five.profiles] == [1, 2, 3, 4, 5]
    assert list(five.frame.columns) == [f"block {n}" for n in range(1, 6)]
    assert ":name: tab-block5-all" in five.table()._repr_markdown_()
    summary = five.summary.data
    # the width-1/8 network: 8, 16, 32, 64, 64 channels; sides 224 … 14; MACs tie in blocks 3 and 4
    assert "halves at every block, from 224×224 to 14×14" in summary
    assert "double in blocks 2, 3, 4 and stay at 64 in block 5" in summary
    assert "multiply-accumulates peak in blocks 3 and 4, tied" in summary
    assert "Parameters rise at every block" in summary and "activation memory falls at every block" in summary
    assert five.plot().get_figwidth() <= vggbook.PAGE_WIDTH
    # the photo rebuilt from each of the five pools, each by its own search
    assert [r.layer for r in five.rebuilt] == [f"block{n}_pool" for n in range(1, 6)]
    fine, layout, finest = KEPT_ROWS
    frame = five.frame
    assert list(frame.loc[layout]) == [vggbook.near_threshold(r.kept.iloc[-1], 0.5) for r in five.rebuilt]
    shown = [BlockKeeps.finest(r.kept) for r in five.rebuilt]
    assert list(frame.loc[finest.format(kept=vggbook.blocks.KEPT)]) == ["none" if s is None else f"{s}" for s in shown]
    listed = ", ".join("none" if s is None else f"{s} px" for s in shown)
    assert "recovered every band" in summary and f"(blocks 1–5: {listed})" in summary
    drops = [r.late_drop for r in five.rebuilt]
    if not any(r.settled for r in five.rebuilt):  # the caveat, from the measured falls
        assert f"still fell by {min(drops):.0%} to {max(drops):.0%} of their value" in summary
        assert "a lower bound" in summary
    ordered = all(vggbook.blocks._at_least(a, b) for a, b in zip(five.rebuilt, five.rebuilt[1:], strict=False))
    assert ("each block's search recovered at least as much as the next block's" in summary) == ordered
    # areas with areas: the field's area beside the pixels holding 90 % of the gradient
    first, last = five.profiles[0], five.profiles[-1]
    assert f"its area {last.inside / first.inside:,.0f}-fold" in summary
    assert "of the convolutional base's" in summary
    assert "not comparable across blocks" in summary
    assert five.plot_rebuilt().get_figwidth() <= vggbook.PAGE_WIDTH
    pair = vggbook.what_it_keeps(block5).reconstructions
    assert [r.layer for r in pair] == ["block4_pool", "block5_pool"]
    assert all(r is t for r, t in zip(pair, five.rebuilt[3:], strict=True))  # the chapter's pair, reused
    plain = vggbook.compare_all(block5)  # the default: no reconstructions
    assert plain.rebuilt is None and KEPT_ROWS[0] not in plain.frame.index


def test_kept_sentence_of_the_five_blocks_follows_the_numbers():
    from vggbook.blocks import AllBlocks

    def rebuilt(
        finest_bands: list[int | None], layout: list[float], drops: tuple = (0.2, 0.25, 0.3, 0.19, 0.32)
    ) -> list[SimpleNamespace]:
        scales = pd.Index([1, 2, 4, 8, 16, 32])
        made = []
        for band, rest, drop in zip(finest_bands, layout, drops, strict=True):
            values = [0.9 if band is not None and s >= band else 0.1 for s in scales[:-1]] + [rest]
            kept = pd.Series(values, index=scales)
            made.append(_search(drop, kept, f"block{len(made) + 1}_pool"))
        return made

    text = AllBlocks([], rebuilt([1, 2, 4, 16, None], [0.95, 0.9, 0.8, 0.6, 0.4]))._kept_sentence()
    assert "coarsens at every block (blocks 1–5: 1 px, 2 px, 4 px, 16 px, none)" in text
    where = "At every band where either search's correlation with the photo is 0.1 or more"
    assert f"{where}, each block's search recovered at least as much as the next block's." in text
    assert "Within 0.05 of the rule" not in text
    assert "from 0.95 to 0.40 in the layout; the layout's correlation falls at every block." in text
    text = AllBlocks([], rebuilt([1, 1, 4, None, None], [0.95, 0.97, 0.8, 0.6, 0.4]))._kept_sentence()
    assert "never gets finer from one block to the next" in text and "in the layout. None of the five" in text
    assert "still fell by 19% to 32% of their value, so these are what each search recovered" in text
    settled = AllBlocks([], rebuilt([1, 1, 4, None, None], [0.9] * 5, (0.01, 0.02, 0.05, 0.03, 0.04)))._kept_sentence()
    assert "All five searches had settled (their errors fell by at most 5% over their last 3 steps)." in settled
    some = AllBlocks([], rebuilt([1, 1, 4, None, None], [0.9] * 5, (0.01, 0.2, 0.05, 0.3, 0.04)))._kept_sentence()
    assert "3 of the five searches had settled in 15 steps" in some
    text = AllBlocks([], rebuilt([1, 8, 4, 16, 16], [0.6, 0.65, 0.7, 0.8, 0.9]))._kept_sentence()
    assert "is coarsest after block 4" in text and "rises at every block" in text
    assert "at least as much" not in text  # every later layout is higher: the order holds for no pair
    text = AllBlocks([], rebuilt([1, 2, 4, 16, None], [0.95, 0.9, 0.8, 0.6, 0.496]))._kept_sentence()
    assert "Within 0.05 of the rule lies the 32 px band from `block5_pool` (0.496, 0.004 below the rule's 0.5)" in text
    assert ": a verdict this close to the line could change with another random start of the search." in text
    text = AllBlocks([], rebuilt([1, 2, 4, 16, None], [0.95, 0.9, 0.8, 0.537, 0.4]))._kept_sentence()
    assert "the 32 px band from `block4_pool` (0.54, 0.04 above the rule's 0.5)" in text  # checks by subtraction
    text = AllBlocks([], rebuilt([1, 2, 4, 16, None], [0.95, 0.97, 0.8, 0.6, 0.4]))._kept_sentence()
    assert "as much as the one on the next block's for blocks 2 → 3, 3 → 4 and 4 → 5; not for 1 → 2." in text


def test_channel_examples_search_the_page_photo_first_then_the_gallery(small_block):
    found = vggbook.channel_examples(small_block, channels=2, k=2)
    assert found.layer == "block2_conv2"
    assert found.channels == [int(c) for c in vggbook.rank_channels(small_block.maps["block2_conv2"])[:2]]
    # the page's photo is the gallery's chelsea: searched first, once, under the gallery's name
    assert list(found.silent.index) == list(vggbook.GALLERY)
    coffee = _with_photo(small_block, vggbook.sample_image("coffee")[::-1].copy(), "upside-down coffee")
    found = vggbook.channel_examples(coffee, channels=1, k=1)
    assert list(found.silent.index) == ["upside-down coffee", *vggbook.GALLERY]  # not in the gallery: added
    with pytest.raises(ValueError, match="no map of layer"):
        vggbook.channel_examples(small_block, "fc1")


def test_finest_kept_scale_is_where_every_coarser_band_is_kept():
    scales = pd.Index([1, 2, 4, 8, 16, 32], name="scale (px)")
    assert BlockKeeps.finest(pd.Series([0.9, 0.8, 0.7, 0.6, 0.55, 0.9], index=scales)) == 1
    assert BlockKeeps.finest(pd.Series([0.9, 0.2, 0.7, 0.6, 0.55, 0.9], index=scales)) == 4  # 2 px breaks it
    assert BlockKeeps.finest(pd.Series([0.1, 0.1, 0.1, 0.1, 0.1, 0.49], index=scales)) is None
    assert BlockKeeps.finest(pd.Series([0.9, 0.9, 0.9, 0.9, 0.9, np.nan], index=scales)) is None  # a flat rest


def test_what_it_keeps_rebuilds_the_photo_from_the_two_pools_once(small_block):
    keeps = vggbook.what_it_keeps(small_block)
    assert [r.layer for r in keeps.reconstructions] == ["block1_pool", "block2_pool"]
    assert vggbook.what_it_keeps(small_block).reconstructions[1] is keeps.after  # made once per chapter
    assert keeps.after.image.shape == small_block.photo.shape and np.array_equal(keeps.after.photo, small_block.photo)
    assert ":name: tab-block2-keeps" in keeps.table._repr_markdown_()
    text, (before, after) = keeps.summary.data, keeps.reconstructions
    two = lambda value: vggbook.near_threshold(value, vggbook.blocks.KEPT)  # noqa: E731
    assert "Rebuilt from `block2_pool`, the photo's finest band (1 px) correlates " in text
    assert f"correlates **{two(after.kept.iloc[0])}**" in text
    assert f"against {two(before.kept.iloc[0])} and {two(before.kept.iloc[-1])} from `block1_pool`" in text
    # whether the two searches settled, said beside their numbers; the order that does not hang on the rule
    only = "only " if before.settled and after.settled else ""  # in the order the sentence names the pools
    assert f"fell by {only}{after.late_drop:.0%} and {before.late_drop:.0%} of their value" in text
    assert ("is a lower bound" in text) == (not (before.settled and after.settled))
    assert ("recovered at least as much" in text) == vggbook.blocks._at_least(before, after)
    frame = vggbook.compare_blocks(small_block).frame
    assert frame.loc[vggbook.blocks.ERROR_ROW, "block 2"].startswith(f"{after.start_error:.0%} → ")
    change = vggbook.compare_blocks(small_block)
    assert change.keeps is not None and change.keeps.after is keeps.after
    frame = change.frame
    fine, layout, finest = KEPT_ROWS
    finest = finest.format(kept=vggbook.blocks.KEPT)
    shown = [BlockKeeps.finest(r.kept) for r in keeps.reconstructions]
    assert list(frame.loc[finest, ["block 1", "block 2"]]) == ["none" if s is None else f"{s}" for s in shown]
    assert frame.loc[layout, "block 2"] == two(keeps.after.kept.iloc[-1])
    assert frame.loc[fine, "block 1"] == two(keeps.before.kept.iloc[0])
    # two searches on two layers: no "change" between them
    assert all(frame.loc[row, "change"] == "–" for row in (*KEPT_ROWS[:2], finest, vggbook.blocks.ERROR_ROW))
    kept_words = ("the search on block 2's pool recovered", "neither the search on block 1's pool nor")
    assert any(words in change.summary.data for words in kept_words)
    # the verdict says, where it is stated, whether the searches had settled
    neither = "neither the search on block 1's pool nor" in change.summary.data  # names block 1 first
    first, second = (before, after) if neither else (after, before)
    assert f"{first.late_drop:.0%} and {second.late_drop:.0%} of their value" in change.summary.data
    assert ("is a lower bound" in change.summary.data) == (not (before.settled and after.settled))
    first = vggbook.compare_blocks(_with_number(small_block, 1), rebuild=False)
    assert first.keeps is None and not any(row.startswith("photo rebuilt") for row in first.frame.index)


def test_falling_sentence_says_whether_the_search_had_settled():
    from vggbook.blocks import _falling

    still = _search(0.22, layer="block4_pool")
    settled = _search(0.03, layer="block3_pool")
    assert not still.settled and settled.settled
    assert (
        _falling([settled]) == " Over its last 3 steps the error fell by only 3% of its value: the search had settled."
    )
    text = _falling([still, settled])
    assert "their last 3 steps the errors still fell by 22% and 3% of their value" in text
    assert "the search on `block4_pool` had not settled" in text
    assert text.endswith("recovered is a lower bound on what the blocks keep, not a measure of what they lost.")
    assert _falling([still]).endswith("a lower bound on what the block keeps, not a measure of what it lost.")
    alone = _falling([still], missing=False)
    assert alone.endswith("so what 15 steps recovered is a lower bound on what the block keeps.")  # no clause
    assert ".." not in text


def test_near_threshold_shows_three_decimals_only_where_two_would_reach_the_threshold():
    assert vggbook.near_threshold(0.496, 0.5) == "0.496" and vggbook.near_threshold(0.504, 0.5) == "0.504"
    assert vggbook.near_threshold(0.4999, 0.5) == "0.4999" and vggbook.near_threshold(0.5, 0.5) == "0.50"
    assert vggbook.near_threshold(0.494, 0.5) == "0.49" and vggbook.near_threshold(0.55, 0.5) == "0.55"
    assert vggbook.near_threshold(-0.001, 0.5) == "0.00" and vggbook.near_threshold(0.296, 0.3) == "0.296"


def test_block1_caveat_says_what_recovered_means_when_the_search_had_not_settled(small_block):
    keeps = vggbook.what_it_keeps(_with_number(small_block, 1))
    text, drop = keeps.summary.data, keeps.after.late_drop
    assert f"fell by {'only ' if drop <= 0.1 else ''}{drop:.0%} of its value" in text
    assert ("*recovered*" in text) == (drop > 0.1)


def test_the_same_pool_gives_the_same_reconstruction_whichever_chapter_asks(small_block):
    """Block n's pool is rebuilt in chapter n and, as the block before, in chapter n + 1 (and in block 5's
    table of all five): its own search, from the one seeded start every pool shares, so the chapters agree to
    the last digit and a chapter's two searches differ only in the block."""
    own = vggbook.blocks.rebuilt(_with_number(small_block, 1), 1)
    for asking in (_with_number(small_block, 2), _with_number(small_block, 5)):
        again = vggbook.blocks.rebuilt(asking, 1)
        assert again is not own  # a search of its own, made again from nothing
        np.testing.assert_array_equal(again.image, own.image)
        np.testing.assert_array_equal(again.errors, own.errors)
        pd.testing.assert_series_equal(again.kept, own.kept)
    chapter2 = vggbook.what_it_keeps(_with_number(small_block, 2)).before
    assert chapter2.layer == "block1_pool" and np.array_equal(chapter2.image, own.image)
    assert vggbook.blocks._error(chapter2) == vggbook.blocks._error(own)  # the row shows the same numbers
    same = vggbook.invert(small_block.model, small_block.photo, "block1_pool", seed=vggbook.blocks.REBUILD_SEED)
    np.testing.assert_array_equal(same.image, own.image)  # the shared seed, not the block's number


def test_ordering_compares_only_bands_where_either_search_recovered_anything():
    from vggbook.blocks import _at_least

    scales = pd.Index([1, 2, 4, 8, 16, 32])
    before = _search(0.2, pd.Series([0.003, 0.02, 0.2, 0.5, 0.7, 0.8], index=scales), "block4_pool")
    after = _search(0.2, pd.Series([0.004, 0.01, 0.1, 0.4, 0.6, 0.7], index=scales), "block5_pool")
    assert _at_least(before, after)  # 0.003 < 0.004 at 1 px, where neither reaches 0.1: noise, not a verdict
    worse = _search(0.2, pd.Series([0.003, 0.02, 0.09, 0.5, 0.7, 0.8], index=scales), "block4_pool")
    assert not _at_least(worse, after)  # 0.09 < 0.1 at 4 px, where the later search reached 0.1


def test_zeros_change_is_computed_from_the_shares_as_shown():
    from vggbook.blocks import PROFILE_ROWS, BlockProfile, _change, _factor

    def profile(zeros: float) -> BlockProfile:
        return BlockProfile(1, 8, 8, 2, 5, 10, 25, zeros, 1, 1, 1)

    # 36.4 % and 35.6 % show as 36 % and 36 % in the summary, but fell by 0.8 points
    assert _change("units of its output that are zero", profile(0.364), profile(0.356)) == "−0.8 points"
    # 39.826 % → 35.769 % show as 39.8 % → 35.8 %: −4.0 points, as a reader subtracts (not −4.1, the unrounded)
    assert _change("units of its output that are zero", profile(0.39826), profile(0.35769)) == "−4.0 points"
    assert _change("units of its output that are zero", profile(0.35), profile(0.36)) == "+1.0 point"
    assert _change("units of its output that are zero", profile(0.35), profile(0.35)) == "0.0 points"
    assert _factor(0.3) == "30% of the" and _factor(0.25) == "a quarter of the"  # not "0.3 of the"
    assert PROFILE_ROWS["units of its output that are zero"](profile(0.398)) == "39.8%"  # as the stats table


def test_effective_mask_holds_90_percent_of_the_gradient_and_the_shares_are_of_side_and_area(small_block):
    field = vggbook.unit_field(small_block)
    mask = field.effective_mask
    assert mask.sum() == field.effective
    assert field.erf[mask].sum() >= 0.9 * field.erf.sum() > field.erf[mask].sum() - field.erf[mask].min()
    side, area = field.photo_shares
    assert side == pytest.approx(field.size / 224) and area == pytest.approx(field.inside / 224**2)
    fig = field.plot()
    assert fig.axes[1].collections  # the 90 % contour is drawn
    label = f"{100 * side:.2g}% of the side,\n{100 * area:.2g}% of the area"
    assert any(label in text.get_text() for text in fig.axes[0].texts)  # the box's label: both shares


def test_montage_grid_is_the_layout_plot_feature_maps_draws():
    from vggbook.plotting import montage_grid

    assert montage_grid(256, 56) == (16, 16, 2) and montage_grid(512, 28) == (23, 23, 1)
    assert montage_grid(64, 224) == (8, 8, 8)


def _examples(found: dict, inside: dict, field: int = 10):
    from vggbook.responses import DatasetExamples

    names = sorted({name for rows in found.values() for name, *_ in rows})
    return DatasetExamples(
        layer="block1_conv2",
        channels=list(found),
        found=found,
        patches={c: [np.zeros((field, field, 3), np.uint8)] * len(rows) for c, rows in found.items()},
        inside=inside,
        silent=pd.Series(0.0, index=names),
        silent_everywhere=0,
        total_channels=8,
        field=field,
        apart=2,
        map_size=(8, 8),
    )


def test_dataset_examples_name_every_image_tied_for_the_most_patches():
    found = {0: [("coffee", 0, 0, 1.0), ("rocket", 4, 4, 0.9)], 1: [("rocket", 0, 0, 1.0), ("coffee", 4, 4, 0.8)]}
    whole = (0, 0, 10, 10)
    text = _examples(found, {0: [whole, whole], 1: [whole, whole]}).summary.data
    assert "2 each from coffee and rocket, tied for the most" in text


def test_dataset_examples_count_shared_images_and_patches_past_the_edge():
    found = {
        0: [("coffee", 0, 0, 3.0), ("rocket", 4, 4, 2.0)],
        1: [("coffee", 4, 4, 2.5), ("moon", 0, 0, 1.0)],
        2: [("camera", 0, 0, 2.0)],
    }
    whole, clipped = (0, 0, 10, 10), (3, 0, 7, 10)
    examples = _examples(found, {0: [clipped, whole], 1: [whole, clipped], 2: [clipped]})
    assert examples.past_edge == 3
    assert examples.shared == (1, 2)  # coffee is in two channels' rows, and channels 0 and 1 both start with it
    text = examples.summary.data
    assert "**1** of those 4 images is in the rows of two or more channels" in text
    assert "come from 2 different images, and 2 of the 3 channels share the image of their strongest" in text
    assert "**3** of the 5 reach past their image's edge" in text


def test_band_grid_sets_the_bands_periods_beside_the_grid_of_positions(small_block):
    from vggbook.blocks import BandGrid

    grid = vggbook.band_grid(small_block)  # block2_pool: positions 4 px apart, two per period from 8 px
    assert grid.layer == "block2_pool" and grid.apart == int(small_block.table.loc["block2_pool", "stride"])
    bands = grid.bands
    assert (grid.finer["to (px)"] < grid.period).all() and (grid.straddling["from (px)"] < grid.period).all()
    assert (grid.straddling["to (px)"] >= grid.period).all()
    assert len(grid.finer) + len(grid.straddling) + int((bands["from (px)"] >= grid.period).sum()) == len(bands)
    sixteen = BandGrid("block4_pool", 16, vggbook.band_periods()).summary.data
    assert sixteen.startswith("Neighbouring positions of `block4_pool` are 16 px of the photo apart, so its grid")
    assert "only for stripes of 32 px or more. The 1, 2 and 4 px bands (periods 2–25 px) hold only shorter" in sixteen
    assert "the 8 px band (periods 26–53 px) straddles that period" in sixteen
    with pytest.raises(ValueError, match="no layer"):
        vggbook.band_grid(small_block, "block9_pool")
