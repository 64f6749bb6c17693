"""Feature inversion (vggbook.inversion, block chapters): the objective's terms, the optimiser, the measures.

Small models only: VGG16 at width 1/8 on 64×64 inputs (every layer name, a few milliseconds a step), a 1×1
identity convolution whose "features" are the image itself, and a two-branch model that is not a chain.
"""

from __future__ import annotations

import cv2
import keras
import numpy as np
import pandas as pd
import pytest

import vggbook
from vggbook import inversion
from vggbook.inversion import PIXEL_RANGE, TV_FRACTION

SIZE = 64


@pytest.fixture(scope="module")
def narrow() -> keras.Model:
    return vggbook.build_vgg16(width=0.125, input_shape=(SIZE, SIZE, 3), include_top=False, seed=0)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return vggbook.sample_image("chelsea", SIZE)


@pytest.fixture(scope="module")
def pool1(narrow, photo) -> inversion.Reconstruction:
    return vggbook.invert(narrow, photo, "block1_pool", steps=30)


def identity_model(size: int = SIZE) -> keras.Model:
    """A 1×1 convolution that passes the image through unchanged: its output IS the preprocessed image."""
    inputs = keras.Input((size, size, 3))
    conv = keras.layers.Conv2D(3, 1, use_bias=False, name="identity")
    model = keras.Model(inputs, conv(inputs))
    conv.set_weights([np.eye(3, dtype=np.float32).reshape(1, 1, 3, 3)])
    return model


# --- the objective's priors, normalised as the paper does -------------------------------------------------


def test_alpha_prior_of_known_images():
    """Σ|x|^6 / (HW·B^6): a pixel of value B in all three colours is worth 3, one of B/2 is worth 3/64."""
    h, w = 8, 10
    at_b = np.full((1, h, w, 3), PIXEL_RANGE, np.float32)
    checker = np.where((np.indices((h, w)).sum(0) % 2)[..., None], 0.5, -0.5) * PIXEL_RANGE
    terms = vggbook.image_priors(np.concatenate([at_b, np.broadcast_to(checker, (1, h, w, 3))]))
    np.testing.assert_allclose(terms["alpha"], [3.0, 3 / 64], rtol=1e-6)


def test_tv_prior_of_known_images():
    """Σ_ij (Σ_colours Δright² + Δdown²) / (HW·(aB)²): a vertical edge of height aB in every colour is crossed
    once on each of the H−1 rows that have a row below, worth 3 each; a constant image is worth nothing."""
    h, w = 8, 10
    edge = np.zeros((1, h, w, 3), np.float32)
    edge[:, :, w // 2 :] = TV_FRACTION * PIXEL_RANGE
    flat = np.full((1, h, w, 3), 37.0, np.float32)
    terms = vggbook.image_priors(np.concatenate([edge, flat]))
    np.testing.assert_allclose(terms["tv"], [3 * (h - 1) / (h * w), 0.0], rtol=1e-6, atol=1e-9)


def test_priors_of_the_sample_photos_are_what_the_docstring_says():
    """The docstring's reasons for λα and λV rest on these ranges, for the sample photos at 224×224."""
    terms = vggbook.image_priors(np.concatenate([vggbook.preprocess(vggbook.sample_image(n)) for n in vggbook.SAMPLES]))
    assert terms["alpha"].max() * inversion.ALPHA_WEIGHT <= 6e-4
    assert 5.3 < terms["tv"].min() and terms["tv"].max() < 21.7


# --- the measure: correlation with the photo at each scale ---------------------------------------------


def test_kept_per_scale_of_the_photo_itself_its_negative_and_a_blur(photo):
    kept = vggbook.kept_per_scale(photo, photo)
    assert list(kept.index) == [1, 2, 4, 8, 16, 32] and kept.index.name == "scale (px)"
    np.testing.assert_allclose(kept, 1.0, atol=1e-6)
    np.testing.assert_allclose(vggbook.kept_per_scale(photo, 255 - photo), -1.0, atol=1e-6)
    blurred = vggbook.kept_per_scale(photo, cv2.GaussianBlur(photo, (0, 0), 3))
    assert blurred[1] < 0.3 and blurred[32] > 0.95  # a blur keeps coarse structure, not detail


def test_kept_per_scale_is_nan_for_a_flat_image_and_checks_shapes(photo):
    assert vggbook.kept_per_scale(photo, np.full_like(photo, 128)).isna().all()
    with pytest.raises(ValueError, match="one shape"):
        vggbook.kept_per_scale(photo, photo[:32])
    with pytest.raises(ValueError, match="at least 32×32"):
        vggbook.kept_per_scale(photo[:16, :16], photo[:16, :16])


# --- the optimiser ---------------------------------------------------------------------------------------


def test_the_feature_error_falls(pool1):
    errors = pool1.errors
    assert len(errors) == pool1.steps == 30
    assert pool1.feature_error < 0.5 * pool1.start_error
    assert errors[-1] <= errors[len(errors) // 2] <= errors[0]


def test_reconstruction_is_closer_to_the_photo_than_its_start(narrow, photo, pool1):
    """steps=1 returns the starting image itself (the image the first step evaluates)."""
    start = vggbook.invert(narrow, photo, "block1_pool", steps=1)
    assert start.feature_error == pytest.approx(pool1.start_error, rel=1e-6)
    bands = [2, 4, 8, 16]  # (at 64×64 the low-pass rest is 2×2 pixels: too few for a correlation to mean much)
    assert (pool1.kept[bands] > start.kept[bands] + 0.5).all()
    assert (pool1.kept[bands] > 0.6).all()


def test_identity_features_give_back_the_photo():
    """With the image itself as the features and no priors, the optimum is the photo: it must come back."""
    photo = vggbook.sample_image("astronaut", SIZE)
    made = vggbook.invert(identity_model(), photo, "identity", steps=150, alpha_weight=0.0, tv_weight=0.0)
    difference = np.abs(made.image.astype(int) - photo.astype(int))
    assert made.feature_error < 1e-3
    assert difference.mean() < 2.0  # grey levels
    assert (made.kept > 0.98).all()


def test_deterministic_for_a_seed(narrow, photo, pool1):
    again = vggbook.invert(narrow, photo, "block1_pool", steps=30)
    other = vggbook.invert(narrow, photo, "block1_pool", steps=30, seed=1)
    np.testing.assert_array_equal(again.image, pool1.image)
    np.testing.assert_array_equal(again.errors, pool1.errors)
    assert np.abs(other.image.astype(int) - pool1.image).mean() > 1.0


def test_a_pair_follows_the_paths_of_two_single_runs(narrow, photo):
    """What `invert` promises for several layers: the list in the order given; each image from the same start as
    alone, on its own layer (equal first errors: the two layers' differ by far more than rounding); then the
    same path up to float rounding of batched convolutions, which Adam's per-number step amplifies to a few
    grey levels here, and no more than that."""
    pair = vggbook.invert(narrow, photo, ["block2_pool", "block1_pool"])
    assert [r.layer for r in pair] == ["block2_pool", "block1_pool"]
    assert pair[0].steps == pair[1].steps == inversion.STEPS
    assert pair[0].seconds == pair[1].seconds  # made in one loop
    bands = [1, 2, 4, 8, 16]  # (the 2×2 low-pass rest of a 64×64 image is too small to compare)
    for together in pair:
        alone = vggbook.invert(narrow, photo, together.layer)
        assert together.errors[0] == pytest.approx(alone.errors[0], rel=1e-5)
        assert together.feature_error == pytest.approx(alone.feature_error, rel=0.05)
        assert np.abs(together.image.astype(int) - alone.image).mean() < 8.0
        np.testing.assert_allclose(together.kept[bands], alone.kept[bands], atol=0.1)
    assert abs(pair[0].errors[0] - pair[1].errors[0]) > 0.05


def test_a_model_that_is_not_a_chain():
    """Where a deeper layer also sees the input directly, one view gives every layer's output for the batch."""
    inputs = keras.Input((32, 32, 3))
    a = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="a")(inputs)
    skip = keras.layers.Conv2D(8, 1, name="skip")(inputs)
    b = keras.layers.Add(name="b")([keras.layers.Conv2D(8, 3, padding="same", name="a2")(a), skip])
    model = keras.Model(inputs, keras.layers.MaxPooling2D(name="pool")(b))
    assert inversion._segments(model, ["a", "pool"]) is None
    photo = vggbook.sample_image("coffee", 32)
    made = vggbook.invert(model, photo, ["pool", "a"], steps=20)
    assert [r.layer for r in made] == ["pool", "a"]
    assert all(r.feature_error < 0.5 * r.start_error for r in made)


# --- bad input -------------------------------------------------------------------------------------------


def test_bad_input_is_named_with_its_fix(narrow, photo):
    with pytest.raises(ValueError, match="unknown layer name.*valid names: .*block1_pool"):
        vggbook.invert(narrow, photo, "block9_pool")
    with pytest.raises(ValueError, match=r"shape \(64, 64, 3\).*vggbook.load_image"):
        vggbook.invert(narrow, vggbook.sample_image("chelsea", 224), "block1_pool")
    with pytest.raises(ValueError, match="RGB uint8.*float32"):
        vggbook.invert(narrow, photo.astype(np.float32), "block1_pool")
    with pytest.raises(ValueError, match="distinct"):
        vggbook.invert(narrow, photo, ["block1_pool", "block1_pool"])
    with pytest.raises(ValueError, match="at least one layer"):
        vggbook.invert(narrow, photo, [])
    with pytest.raises(ValueError, match="steps must be"):
        vggbook.invert(narrow, photo, "block1_pool", steps=0)
    with pytest.raises(TypeError, match="Keras model"):
        vggbook.invert("vgg16", photo, "block1_pool")


# --- what the chapters show ------------------------------------------------------------------------------


def test_plot_shows_the_photo_each_reconstruction_and_the_curves(narrow, photo, pool1):
    pair = vggbook.invert(narrow, photo, ["block1_pool", "block2_pool"], steps=5)
    fig = vggbook.plot_reconstructions(pair)
    assert fig.get_figwidth() <= vggbook.PAGE_WIDTH
    images = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title().split("\n")[0] for ax in images] == ["photo", "block1_pool", "block2_pool"]
    assert all(not ax.axison for ax in images)
    (curves,) = [ax for ax in fig.axes if ax.lines]
    assert [line.get_label() for line in curves.get_lines() if not line.get_label().startswith("_")] == [
        "block1_pool",
        "block2_pool",
    ]
    assert "from each layer" in fig.get_suptitle() and "not comparable across layers" in fig.get_suptitle()
    assert len(pool1.plot().axes) == 3
    with pytest.raises(ValueError, match="different photos"):
        vggbook.plot_reconstructions([pool1, vggbook.invert(narrow, 255 - photo, "block1_pool", steps=1)])


def test_table_and_summary_hold_the_measured_numbers(pool1):
    table = vggbook.reconstruction_table([pool1], "tab-test", "Test.")
    assert isinstance(table.frame, pd.DataFrame)
    row = table.frame.loc["block1_pool"]
    assert row["steps"] == 30 and row["error"] == pytest.approx(pool1.feature_error)
    assert row["32 px"] == pytest.approx(pool1.kept[32])
    assert ":name: tab-test" in table._repr_markdown_()
    text = pool1.summary.data
    assert f"{pool1.feature_error:.1%}" in text and f"{pool1.kept[32]:.2f}" in text and "30 steps" in text


def test_table_with_a_threshold_shows_correlations_that_read_true_against_it(pool1):
    threshold = round(float(pool1.kept[32]), 2)  # a rule that two decimals of this band would seem to meet
    shown = vggbook.reconstruction_table([pool1], "tab-test", "Test.", kept_at=threshold)._repr_markdown_()
    assert vggbook.near_threshold(pool1.kept[32], threshold) in shown
    assert vggbook.near_threshold(pool1.kept[32], threshold) != f"{pool1.kept[32]:.2f}" or pool1.kept[32] == threshold
    fig = vggbook.plot_reconstructions([pool1], kept_at=0.5)
    assert "from block1_pool" in fig.get_suptitle() and "each layer" not in fig.get_suptitle()  # one: singular
    (curves,) = [ax for ax in fig.axes if ax.lines]
    assert "recovered (≥ 0.5)" in [line.get_label() for line in curves.get_lines()]


def test_late_fall_is_the_fall_over_the_last_steps(pool1):
    errors = pool1.errors
    assert pool1.late_fall(3) == pytest.approx(1 - errors[-1] / errors[-4])
    assert pool1.late_drop == pool1.late_fall(vggbook.inversion.LATE_STEPS) and pool1.late_steps == 3
    assert pool1.late_fall(100) == pytest.approx(1 - errors[-1] / errors[0])  # no further back than the start
    with pytest.raises(ValueError, match="at least 1"):
        pool1.late_fall(0)


def test_settled_is_a_late_fall_of_at_most_the_one_threshold(pool1):
    from vggbook.inversion import SETTLED, Reconstruction

    def search(errors: list[float]) -> Reconstruction:
        return Reconstruction(pool1.image, "block1_pool", np.array(errors), len(errors), 0.0, pool1.photo)

    assert search([1.0, 0.5, 0.5, 0.5, 0.5 * (1 - SETTLED)]).settled  # exactly the threshold: settled
    assert not search([1.0, 0.5, 0.5, 0.5, 0.5 * (1 - SETTLED) - 0.01]).settled
    assert "(still falling)" in search([1.0, 0.5, 0.5, 0.5, 0.2]).summary.data
    assert "(still falling)" not in search([1.0, 0.5, 0.5, 0.5, 0.49]).summary.data
    assert pool1.settled == (pool1.late_drop <= SETTLED)


def test_band_periods_are_ranges_one_after_the_other():
    bands = vggbook.band_periods()
    assert list(bands.index) == [1, 2, 4, 8, 16, 32]
    assert bands["from (px)"].iloc[0] == 2 and bands["to (px)"].iloc[-1] == 224  # the finest stripes to the widest
    assert all(bands["from (px)"].iloc[1:].to_numpy() == bands["to (px)"].iloc[:-1].to_numpy() + 1)
    middle = (bands["from (px)"] * bands["to (px)"]) ** 0.5  # each band about twice as coarse as the one before
    assert all(1.5 < r < 3 for r in middle.iloc[1:-1].to_numpy() / middle.iloc[:-2].to_numpy())
