"""vggbook.images: OpenCV loading (RGB out, every pixel format), centre crop, caffe preprocessing."""

from __future__ import annotations

import cv2
import keras
import numpy as np
import pytest

import vggbook

RED_RGB = (255, 0, 0)


def _write(path, image) -> str:
    assert cv2.imwrite(str(path), image), f"cv2.imwrite could not write {path}"
    return str(path)


def _pure_red_bgr(h: int = 40, w: int = 40) -> np.ndarray:
    image = np.zeros((h, w, 3), np.uint8)
    image[..., 2] = 255  # OpenCV stores B, G, R
    return image


# ---------------------------------------------------------------------------------------------
# Files


def test_colour_png_comes_back_rgb(tmp_path):
    image = vggbook.load_image(_write(tmp_path / "red.png", _pure_red_bgr()))
    assert image.shape == (224, 224, 3) and image.dtype == np.uint8
    assert (image.reshape(-1, 3) == RED_RGB).all()


def test_colour_jpeg_comes_back_rgb(tmp_path):
    image = vggbook.load_image(_write(tmp_path / "red.jpg", _pure_red_bgr()))
    assert image.shape == (224, 224, 3) and image.dtype == np.uint8
    mean = image.reshape(-1, 3).mean(axis=0)
    assert mean[0] > 240 and mean[1] < 15 and mean[2] < 15  # lossy, but red stays red


def test_pathlib_path_is_accepted(tmp_path):
    _write(tmp_path / "red.png", _pure_red_bgr())
    assert vggbook.load_image(tmp_path / "red.png")[0, 0].tolist() == list(RED_RGB)


def test_grayscale_png(tmp_path):
    grey = np.full((50, 50), 77, np.uint8)
    image = vggbook.load_image(_write(tmp_path / "grey.png", grey))
    assert image.shape == (224, 224, 3) and image.dtype == np.uint8
    assert (image == 77).all()


def test_rgba_png_drops_alpha_and_keeps_colour(tmp_path):
    bgra = np.zeros((30, 30, 4), np.uint8)
    bgra[..., 2] = 255  # red
    bgra[..., 3] = 128  # half transparent
    image = vggbook.load_image(_write(tmp_path / "rgba.png", bgra))
    assert image.shape == (224, 224, 3)
    assert (image.reshape(-1, 3) == RED_RGB).all()


def test_16_bit_png_is_scaled_to_8_bit(tmp_path):
    bgr16 = np.zeros((32, 32, 3), np.uint16)
    bgr16[..., 2] = 65535  # full-scale red
    bgr16[..., 1] = 257 * 100  # green at 100 / 255
    image = vggbook.load_image(_write(tmp_path / "deep.png", bgr16))
    assert image.dtype == np.uint8
    assert (image.reshape(-1, 3) == (255, 100, 0)).all()


def test_16_bit_grayscale_png(tmp_path):
    image = vggbook.load_image(_write(tmp_path / "deep_grey.png", np.full((32, 32), 257 * 9, np.uint16)))
    assert image.shape == (224, 224, 3) and (image == 9).all()


def test_non_square_image_is_centre_cropped(tmp_path):
    # 100 × 300 (h × w): left third blue, middle third green, right third red (in RGB terms)
    bgr = np.zeros((100, 300, 3), np.uint8)
    bgr[:, :100, 0] = 255
    bgr[:, 100:200, 1] = 255
    bgr[:, 200:, 2] = 255
    image = vggbook.load_image(_write(tmp_path / "wide.png", bgr))
    assert image.shape == (224, 224, 3) and image.dtype == np.uint8
    # scaled to 224 × 672, the central 224 columns are the green stripe only
    assert (image[:, 5:-5] == (0, 255, 0)).all()


def test_size_argument(tmp_path):
    image = vggbook.load_image(_write(tmp_path / "red.png", _pure_red_bgr(300, 200)), size=64)
    assert image.shape == (64, 64, 3)


def test_missing_file_names_the_path(tmp_path):
    missing = tmp_path / "no_such_photo.jpg"
    with pytest.raises(FileNotFoundError, match="no_such_photo.jpg"):
        vggbook.load_image(missing)


def test_text_file_renamed_jpg_names_the_path(tmp_path):
    fake = tmp_path / "notes.jpg"
    fake.write_text("not a picture\n")
    with pytest.raises(ValueError, match="notes.jpg"):
        vggbook.load_image(fake)


def test_empty_file_names_the_path(tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty.png"):
        vggbook.load_image(empty)


def test_folder_is_refused(tmp_path):
    with pytest.raises(IsADirectoryError, match="folder"):
        vggbook.load_image(tmp_path)


@pytest.mark.parametrize("source", [42, None, [[0, 0, 0]], b"bytes"])
def test_wrong_type_raises_type_error(source):
    with pytest.raises(TypeError, match="path or a NumPy array"):
        vggbook.load_image(source)


def test_bad_size_raises():
    with pytest.raises(ValueError, match="size"):
        vggbook.load_image(np.zeros((8, 8, 3), np.uint8), size=0)


# ---------------------------------------------------------------------------------------------
# Arrays (taken as RGB)


def test_float_array_in_unit_range():
    rgb = np.zeros((10, 10, 3), np.float32)
    rgb[..., 0] = 1.0
    rgb[..., 1] = 0.5
    image = vggbook.load_image(rgb)
    assert image.dtype == np.uint8 and image.shape == (224, 224, 3)
    assert (image.reshape(-1, 3) == (255, 128, 0)).all()


def test_uint8_array_is_taken_as_rgb():
    rgb = np.zeros((10, 10, 3), np.uint8)
    rgb[..., 0] = 200
    image = vggbook.load_image(rgb)
    assert (image.reshape(-1, 3) == (200, 0, 0)).all()


def test_gray_array():
    image = vggbook.load_image(np.full((10, 12), 30, np.uint8))
    assert image.shape == (224, 224, 3) and (image == 30).all()


def test_array_with_nan_is_refused():
    with pytest.raises(ValueError, match="NaN"):
        vggbook.load_image(np.full((10, 10, 3), np.nan, np.float32))


def test_array_of_wrong_shape_is_refused():
    with pytest.raises(ValueError, match="shape"):
        vggbook.load_image(np.zeros((10, 10, 5), np.uint8))


def test_array_of_unsupported_type_is_refused():
    with pytest.raises(ValueError, match="int64"):
        vggbook.load_image(np.zeros((10, 10, 3), np.int64))


def test_resize_and_crop_keeps_a_square_image():
    rgb = np.random.default_rng(0).integers(0, 256, (224, 224, 3), dtype=np.uint8)
    np.testing.assert_array_equal(vggbook.resize_and_crop(rgb), rgb)


# ---------------------------------------------------------------------------------------------
# Sample photographs


@pytest.mark.parametrize("name", vggbook.SAMPLES)
def test_sample_images(name):
    image = vggbook.sample_image(name)
    assert image.shape == (224, 224, 3) and image.dtype == np.uint8
    assert image.std() > 10  # a photograph, not a blank


def test_samples_are_the_four_named():
    assert set(vggbook.SAMPLES) == {"chelsea", "coffee", "astronaut", "rocket"}


def test_chelsea_is_the_scikit_image_photo():
    import skimage.data

    np.testing.assert_array_equal(vggbook.sample_image("chelsea"), vggbook.load_image(skimage.data.chelsea()))


def test_unknown_sample_lists_the_names():
    with pytest.raises(ValueError, match="chelsea, coffee, astronaut, rocket"):
        vggbook.sample_image("lena")


# ---------------------------------------------------------------------------------------------
# Preprocessing


def test_preprocess_equals_keras_exactly():
    image = vggbook.sample_image("coffee")
    expected = keras.applications.vgg16.preprocess_input(image[np.newaxis].astype(np.float32))
    got = vggbook.preprocess(image)
    assert got.shape == (1, 224, 224, 3) and got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)


def test_preprocess_of_a_batch():
    batch = np.stack([vggbook.sample_image("coffee"), vggbook.sample_image("rocket")])
    expected = keras.applications.vgg16.preprocess_input(batch.astype(np.float32))
    np.testing.assert_array_equal(vggbook.preprocess(batch), expected)


def test_preprocess_flips_to_bgr_and_subtracts_means():
    red = np.zeros((2, 2, 3), np.uint8)
    red[..., 0] = 255
    x = vggbook.preprocess(red)
    np.testing.assert_allclose(x[0, 0, 0], [-103.939, -116.779, 255 - 123.68], rtol=1e-6)


def test_deprocess_inverts_preprocess():
    image = vggbook.sample_image("astronaut")
    np.testing.assert_array_equal(vggbook.deprocess(vggbook.preprocess(image)), image)


def test_deprocess_keeps_a_batch():
    batch = np.stack([vggbook.sample_image("coffee"), vggbook.sample_image("rocket")])
    np.testing.assert_array_equal(vggbook.deprocess(vggbook.preprocess(batch)), batch)


def test_preprocess_rejects_wrong_shape():
    with pytest.raises(ValueError, match="RGB image"):
        vggbook.preprocess(np.zeros((224, 224), np.uint8))
