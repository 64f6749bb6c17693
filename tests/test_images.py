"""vggbook.images: OpenCV loading (RGB out, every pixel format), Keras' evaluation crop, caffe preprocessing;
the reader's photo (`vggbook.photo`): files, URLs (against a local HTTP server), uploads, every bad input."""

from __future__ import annotations

import math
import re

import cv2
import keras
import numpy as np
import pytest

import vggbook
from vggbook import PhotoError

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
    bgra = np.zeros((40, 40, 4), np.uint8)
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
    # scaled to 256 × 768, the central 224 columns are the green stripe only
    assert (image[:, 5:-5] == (0, 255, 0)).all()


def test_size_argument(tmp_path):
    image = vggbook.load_image(_write(tmp_path / "red.png", _pure_red_bgr(300, 200)), size=64)
    assert image.shape == (64, 64, 3)


def test_missing_file_names_the_path(tmp_path):
    missing = tmp_path / "no_such_photo.jpg"
    with pytest.raises(PhotoError, match=re.escape(f"no photo at {missing}: the file does not exist")):
        vggbook.load_image(missing)


def test_text_file_renamed_jpg_names_the_path(tmp_path):
    fake = tmp_path / "notes.jpg"
    fake.write_text("not a picture\n")
    with pytest.raises(PhotoError, match=re.escape(f"{fake} is not an image OpenCV can read: it is text")):
        vggbook.load_image(fake)


def test_empty_file_names_the_path(tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(PhotoError, match=re.escape(f"{empty} is not an image OpenCV can read: it is an empty file")):
        vggbook.load_image(empty)


def test_folder_is_refused(tmp_path):
    with pytest.raises(PhotoError, match=re.escape(f"{tmp_path} is a folder, not a photo")):
        vggbook.load_image(tmp_path)


@pytest.mark.parametrize("source", [42, None, [[0, 0, 0]], b"bytes"])
def test_wrong_type_raises_type_error(source):
    with pytest.raises(TypeError, match="path or a NumPy array"):
        vggbook.load_image(source)


def test_bad_size_raises():
    with pytest.raises(ValueError, match="size"):
        vggbook.load_image(np.zeros((40, 40, 3), np.uint8), size=0)


# ---------------------------------------------------------------------------------------------
# Arrays (taken as RGB)


def test_float_array_in_unit_range():
    rgb = np.zeros((40, 40, 3), np.float32)
    rgb[..., 0] = 1.0
    rgb[..., 1] = 0.5
    image = vggbook.load_image(rgb)
    assert image.dtype == np.uint8 and image.shape == (224, 224, 3)
    assert (image.reshape(-1, 3) == (255, 128, 0)).all()


def test_uint8_array_is_taken_as_rgb():
    rgb = np.zeros((40, 40, 3), np.uint8)
    rgb[..., 0] = 200
    image = vggbook.load_image(rgb)
    assert (image.reshape(-1, 3) == (200, 0, 0)).all()


def test_gray_array():
    image = vggbook.load_image(np.full((40, 48), 30, np.uint8))
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


def test_resize_and_crop_of_a_256_square_is_its_centre():
    # already 256 on the shorter side: nothing is resampled, the central 224 × 224 is cut out as it is
    rgb = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    np.testing.assert_array_equal(vggbook.resize_and_crop(rgb), rgb[16:240, 16:240])


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
    with pytest.raises(PhotoError, match="chelsea, coffee, astronaut, rocket"):
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


# ---------------------------------------------------------------------------------------------
# The reader's photo: vggbook.photo


def keras_evaluation_crop(rgb: np.ndarray, size: int = 224) -> np.ndarray:
    """The keras-applications maintainer's ImageNet evaluation recipe (issues #88 and #99), written out
    here on its own: the shorter side to 256 (for 224) with cv2.INTER_CUBIC, then the central square."""
    h, w = rgb.shape[:2]
    shorter = round(size * 256 / 224)
    resized = cv2.resize(rgb, (w * shorter // min(h, w), h * shorter // min(h, w)), interpolation=cv2.INTER_CUBIC)
    top, left = (resized.shape[0] - size) // 2, (resized.shape[1] - size) // 2
    return resized[top : top + size, left : left + size]


def _noise(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth random colour image (noise blurred), so that resampling is tested on real structure."""
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (0, 0), 2)


def _jpeg_bytes(bgr: np.ndarray, *flags: int) -> bytes:
    ok, data = cv2.imencode(".jpg", bgr, list(flags))
    assert ok
    return data.tobytes()


def test_photo_error_is_a_value_error():
    assert issubclass(PhotoError, ValueError) and vggbook.PhotoError is PhotoError


def test_the_default_photo_is_the_cat(monkeypatch):
    import skimage.data

    monkeypatch.delenv("VGGBOOK_PHOTO", raising=False)
    cat = skimage.data.chelsea()
    photo = vggbook.photo()
    assert photo.name == "chelsea (scikit-image)"
    np.testing.assert_array_equal(photo.original, cat)
    np.testing.assert_array_equal(photo.image, keras_evaluation_crop(cat))
    h, w = cat.shape[:2]  # 300 × 451: the shorter side to 256, the longer to 451 · 256 // 300 = 384
    assert photo.resized == (w * 256 // h, 256) == (384, 256)
    assert (
        str(photo)
        == photo.summary
        == ("chelsea (scikit-image): 451×300 pixels, resized to 384×256 and centre-cropped to 224×224")
    )
    assert repr(photo) == f"Photo({photo.summary})"


# photos with a shorter side up to 512 (ImageNet's): exactly the recipe; larger are area-averaged first (below)
@pytest.mark.parametrize(("h", "w", "size"), [(300, 451, 224), (640, 480, 224), (97, 1000, 224), (500, 375, 112)])
def test_the_crop_is_keras_imagenet_evaluation(h, w, size):
    rgb = _noise(h, w)
    photo = vggbook.photo(rgb, size=size)
    assert photo.image.shape == (size, size, 3) and photo.image.dtype == np.uint8
    np.testing.assert_array_equal(photo.image, keras_evaluation_crop(rgb, size))
    np.testing.assert_array_equal(vggbook.resize_and_crop(rgb, size), photo.image)
    np.testing.assert_array_equal(vggbook.load_image(rgb, size), photo.image)


def test_samples_use_the_same_crop():
    import skimage.data

    np.testing.assert_array_equal(vggbook.sample_image("coffee"), keras_evaluation_crop(skimage.data.coffee()))
    np.testing.assert_array_equal(vggbook.sample_image("camera"), vggbook.photo("camera").image)
    assert vggbook.photo("camera").name == "camera (scikit-image)"


def test_the_box_maps_back_to_the_original():
    # Red counts columns, green rows: a cubic resize reproduces a linear ramp, so each input pixel
    # shows which original pixel it came from, and the crop's edges must land on the box's edges.
    h, w = 200, 256
    ramp = np.zeros((h, w, 3), np.uint8)
    ramp[..., 0] = np.arange(w)[np.newaxis, :]
    ramp[..., 1] = np.arange(h)[:, np.newaxis]
    photo = vggbook.photo(ramp)
    x0, y0, x1, y1 = photo.box
    # computed on its own: the shorter side 200 → 256, the longer 256 → 256 · 256 // 200 = 327; the box
    # holds the original pixels whose centres (i + 0.5) the crop's span covers
    sx, sy, left, top = 256 / 327, 200 / 256, (327 - 224) // 2, (256 - 224) // 2
    first, last = (lambda a: math.ceil(a - 0.5)), (lambda b: math.ceil(b - 0.5) - 1)
    assert photo.box == (first(left * sx), first(top * sy), last((left + 224) * sx), last((top + 224) * sy))
    assert x1 - x0 + 1 == y1 - y0 + 1 == 175  # 224 · 200 / 256 = 175 of the original's 200 rows
    red, green = photo.image[..., 0].astype(int), photo.image[..., 1].astype(int)
    assert abs(red[112, 0] - x0) <= 1 and abs(red[112, -1] - x1) <= 1
    assert abs(green[0, 112] - y0) <= 1 and abs(green[-1, 112] - y1) <= 1


def test_the_box_of_the_cat():
    # 451 × 300 → 384 × 256, crop at (80, 16): back in the original, 262.5 pixels square from (93.9, 18.75)
    assert vggbook.photo("chelsea").box == (94, 19, 356, 280)


def test_a_photo_is_its_image_as_an_array():
    photo = vggbook.photo("rocket")
    assert np.asarray(photo) is photo.image
    np.testing.assert_array_equal(vggbook.preprocess(photo), vggbook.preprocess(photo.image))
    assert np.asarray(photo, dtype=np.float32).dtype == np.float32


def test_a_photo_given_to_photo_is_cropped_again_at_the_size_asked():
    cat = vggbook.photo("chelsea")
    small = vggbook.photo(cat, size=64)
    assert small.name == cat.name and small.original is cat.original
    np.testing.assert_array_equal(small.image, keras_evaluation_crop(cat.original, 64))
    np.testing.assert_array_equal(vggbook.photo(cat).image, cat.image)


def test_the_plot_is_one_figure_with_the_crop_drawn(monkeypatch):
    from matplotlib.patches import Rectangle

    monkeypatch.delenv("VGGBOOK_PHOTO", raising=False)
    photo = vggbook.photo()
    fig = photo.plot()
    assert fig.get_size_inches()[0] <= vggbook.PAGE_WIDTH
    left, right = fig.axes
    assert not left.axison and not right.axison
    assert "chelsea (scikit-image): 451×300 pixels" in left.get_title()
    assert "224×224" in right.get_title()
    np.testing.assert_array_equal(left.images[0].get_array(), photo.original)
    np.testing.assert_array_equal(right.images[0].get_array(), photo.image)
    (box,) = [p for p in left.patches if isinstance(p, Rectangle)]
    x0, y0, x1, y1 = photo.box
    assert (box.get_x(), box.get_y(), box.get_width(), box.get_height()) == (
        x0 - 0.5,
        y0 - 0.5,
        x1 - x0 + 1,
        y1 - y0 + 1,
    )


def test_a_portrait_and_a_panorama_fit_the_page():
    for h, w in ((4000, 3000), (300, 2400), (2400, 300)):
        fig = vggbook.photo(np.zeros((h, w, 3), np.uint8)).plot()
        width, height = fig.get_size_inches()
        assert width <= vggbook.PAGE_WIDTH and height <= 3.3 + 1e-9


# Files of every kind


def test_a_non_square_jpeg(tmp_path):
    bgr = _noise(300, 500)
    path = tmp_path / "wide.jpg"
    path.write_bytes(_jpeg_bytes(bgr, cv2.IMWRITE_JPEG_QUALITY, 95))
    photo = vggbook.photo(path)
    assert photo.name == "wide.jpg" and photo.original.shape == (300, 500, 3)
    np.testing.assert_array_equal(photo.original, cv2.imread(str(path))[..., ::-1])
    np.testing.assert_array_equal(photo.image, keras_evaluation_crop(photo.original))
    assert photo.summary == "wide.jpg: 500×300 pixels, resized to 426×256 and centre-cropped to 224×224"


def test_a_progressive_jpeg(tmp_path):
    path = tmp_path / "progressive.jpg"
    path.write_bytes(_jpeg_bytes(_noise(120, 90), cv2.IMWRITE_JPEG_PROGRESSIVE, 1))
    assert vggbook.photo(str(path)).original.shape == (120, 90, 3)


def test_a_lossless_webp(tmp_path):
    bgr = _noise(60, 80)
    path = _write(tmp_path / "photo.webp", bgr)  # cv2.imwrite's WebP: quality above 100 means lossless
    assert cv2.imwrite(path, bgr, [cv2.IMWRITE_WEBP_QUALITY, 101])
    np.testing.assert_array_equal(vggbook.photo(path).original, bgr[..., ::-1])


def test_grey_rgba_and_16_bit_pngs_through_photo(tmp_path):
    grey = vggbook.photo(_write(tmp_path / "grey.png", np.full((40, 50), 77, np.uint8)))
    assert grey.original.shape == (40, 50, 3) and (grey.original == 77).all()
    bgra = np.zeros((40, 40, 4), np.uint8)
    bgra[..., 2], bgra[..., 3] = 255, 0  # red, and fully transparent: the colour is kept, the alpha dropped
    assert (vggbook.photo(_write(tmp_path / "rgba.png", bgra)).original == RED_RGB).all()
    deep = np.full((40, 40, 3), 257 * 200, np.uint16)
    photo = vggbook.photo(_write(tmp_path / "deep.png", deep))
    assert photo.original.dtype == np.uint8 and (photo.original == 200).all()


def test_the_exif_orientation_of_a_phone_photo_is_applied(tmp_path):
    # A phone stores a portrait photo landscape and says "rotate 90°" in EXIF (Orientation = 6).
    from PIL import Image

    stored = np.zeros((60, 100, 3), np.uint8)
    stored[:, :50] = (255, 0, 0)  # left half red, right half blue, as stored
    stored[:, 50:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "portrait.jpg"
    Image.fromarray(stored).save(path, exif=exif, quality=95)
    photo = vggbook.photo(path)
    assert photo.original.shape == (100, 60, 3)  # upright: taller than wide
    top, bottom = photo.original[10, 30], photo.original[90, 30]
    assert top[0] > 200 and top[2] < 50 and bottom[2] > 200 and bottom[0] < 50  # rotated clockwise


def test_bytes_after_the_end_of_a_jpeg_are_allowed(tmp_path):
    # a phone's "motion photo" appends a video after the JPEG's end-of-image marker
    path = tmp_path / "motion.jpg"
    path.write_bytes(_jpeg_bytes(_noise(64, 64)) + b"\x00\x00\x00\x18ftypmp42" + bytes(5000))
    assert vggbook.photo(path).original.shape == (64, 64, 3)


# Bad files: one sentence naming the file and the problem, and nothing from OpenCV on stderr


def test_a_missing_file_without_extension_lists_the_samples(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PhotoError) as raised:
        vggbook.photo("chelsey")
    assert str(raised.value) == (
        f"no photo at chelsey: the file does not exist (relative to {tmp_path}); the sample photos are "
        + ", ".join(vggbook.GALLERY)
    )


def test_a_folder_is_refused_by_photo(tmp_path):
    with pytest.raises(PhotoError, match=re.escape(f"{tmp_path} is a folder, not a photo: pass the path of an")):
        vggbook.photo(tmp_path)


@pytest.mark.parametrize(
    ("content", "what"),
    [
        (b"<!DOCTYPE html>\n<html><body>a gallery</body></html>\n", "an HTML page"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "a PDF document"),
        (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>', "an SVG drawing, which OpenCV cannot"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00", "a HEIC (iPhone) image, which OpenCV cannot read"),
        (bytes(range(256)) * 4, "of an unknown format (first bytes 00 01 02 03 04 05 06 07)"),
    ],
)
def test_a_file_that_is_not_an_image_says_what_it_is(tmp_path, capfd, content, what):
    path = tmp_path / "photo.jpg"
    path.write_bytes(content)
    with pytest.raises(PhotoError, match=re.escape(f"{path} is not an image OpenCV can read: it is {what}")):
        vggbook.photo(path)
    assert capfd.readouterr().err == ""


def _cut(data: bytes, keep: float = 0.6) -> bytes:
    return data[: int(len(data) * keep)]


def test_a_truncated_jpeg_is_refused_quietly(tmp_path, capfd):
    data = _jpeg_bytes(_noise(200, 300))
    path = tmp_path / "cut.jpg"
    path.write_bytes(_cut(data))
    with pytest.raises(PhotoError) as raised:
        vggbook.photo(path)
    assert str(raised.value) == (
        f"{path} is a truncated JPEG file: it ends before its end-of-image marker (FFD9); "
        "the file is incomplete: copy or download it again"
    )
    assert capfd.readouterr().err == ""


def test_a_truncated_jpeg_with_an_earlier_ffd9_is_found(tmp_path):
    # An end-of-image marker inside a comment (as inside an EXIF thumbnail) must not pass for the real one.
    data = _jpeg_bytes(_noise(100, 100), cv2.IMWRITE_JPEG_PROGRESSIVE, 1)
    comment = b"\xff\xfe" + (2 + 6).to_bytes(2, "big") + b"a\xff\xd9b\xff\xd9"
    whole = data[:2] + comment + data[2:]
    (tmp_path / "whole.jpg").write_bytes(whole)
    assert vggbook.photo(tmp_path / "whole.jpg").original.shape == (100, 100, 3)
    for keep in (0.3, 0.6, 0.95):  # in the first scan, between scans, in the last
        (tmp_path / "cut.jpg").write_bytes(_cut(whole, keep))
        with pytest.raises(PhotoError, match="truncated JPEG"):
            vggbook.photo(tmp_path / "cut.jpg")
    (tmp_path / "no_eoi.jpg").write_bytes(whole[:-2])  # all of it but the marker
    with pytest.raises(PhotoError, match="truncated JPEG"):
        vggbook.photo(tmp_path / "no_eoi.jpg")


def test_a_truncated_png_is_refused(tmp_path, capfd):
    ok, data = cv2.imencode(".png", _noise(100, 100))
    path = tmp_path / "cut.png"
    for end in (len(data) // 2, len(data) - 6):  # in the image data; inside the IEND chunk
        path.write_bytes(data.tobytes()[:end])
        with pytest.raises(PhotoError, match=re.escape(f"{path} is a truncated PNG file: it ends before its IEND")):
            vggbook.photo(path)
    assert capfd.readouterr().err == ""


def test_a_truncated_webp_is_refused(tmp_path):
    ok, data = cv2.imencode(".webp", _noise(100, 100), [cv2.IMWRITE_WEBP_QUALITY, 101])
    path = tmp_path / "cut.webp"
    path.write_bytes(_cut(data.tobytes()))
    message = f"{path} is a truncated WebP file: its RIFF header announces {len(data):,} bytes, the file has "
    with pytest.raises(PhotoError, match=re.escape(message + f"{len(_cut(data.tobytes())):,}")):
        vggbook.photo(path)


def test_opencv_warnings_on_a_damaged_jpeg_are_silenced(tmp_path, capfd):
    data = bytearray(_jpeg_bytes(_noise(100, 100)))
    sos = data.index(b"\xff\xda")
    data[sos + 200 : sos + 200] = b"\x00\x00\x00"  # extraneous bytes in the scan: libjpeg complains on stderr
    path = tmp_path / "damaged.jpg"
    path.write_bytes(bytes(data))
    photo = vggbook.photo(path)  # decodable all the same
    assert photo.original.shape == (100, 100, 3)
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize(("h", "w"), [(31, 400), (400, 31), (16, 16)])
def test_a_photo_too_small_for_vgg16_is_refused(tmp_path, h, w):
    path = _write(tmp_path / "tiny.png", _noise(h, w))
    with pytest.raises(PhotoError) as raised:
        vggbook.photo(path)
    assert str(raised.value) == (
        f"{path} is {w}×{h} pixels, too small for VGG16: its shorter side must be at least 32 pixels "
        "(five 2×2 poolings halve 32 to 1); pass a larger photo"
    )
    with pytest.raises(PhotoError, match="array is"):
        vggbook.load_image(_noise(h, w))


def test_the_smallest_photo_vgg16_takes(tmp_path):
    photo = vggbook.photo(_write(tmp_path / "small.png", _noise(32, 48)))
    assert photo.image.shape == (224, 224, 3)
    assert keras.applications.VGG16(weights=None, include_top=False, input_shape=(32, 32, 3)).output_shape[1:3] == (
        1,
        1,
    )
    with pytest.raises(ValueError, match="32"):  # Keras' own VGG16 refuses anything smaller too
        keras.applications.VGG16(weights=None, include_top=False, input_shape=(31, 31, 3))


def test_only_http_urls_are_downloaded():
    with pytest.raises(PhotoError, match=re.escape("ftp://example.org/cat.jpg: only http:// and https://")):
        vggbook.photo("ftp://example.org/cat.jpg")


@pytest.mark.parametrize("source", [42, b"cat.jpg", [[0, 0, 0]]])
def test_photo_of_the_wrong_type(source):
    with pytest.raises(TypeError, match="a path, a URL, a sample name, 'upload' or an RGB array"):
        vggbook.photo(source)


# Uploads (Colab)


def test_upload_outside_colab_says_where_it_works(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "google.colab", None)  # import fails, as outside Colab
    with pytest.raises(PhotoError) as raised:
        vggbook.photo("upload")
    assert str(raised.value) == (
        "photo('upload') works in Google Colab only, where it opens a file picker; here, pass the photo's "
        "path or URL instead, e.g. vggbook.photo('my_photo.jpg')"
    )


def _fake_colab(monkeypatch, uploaded: dict[str, bytes]) -> None:
    """A stand-in for `google.colab.files`: upload() returns what the reader picked, as Colab's does."""
    import sys
    import types

    colab = types.ModuleType("google.colab")
    colab.files = types.SimpleNamespace(upload=lambda: uploaded)
    monkeypatch.setitem(sys.modules, "google.colab", colab)


def test_upload_in_colab_reads_the_chosen_file(monkeypatch, capsys):
    bgr = _noise(100, 150)
    ok, png = cv2.imencode(".png", bgr)
    _fake_colab(monkeypatch, {"holiday.png": png.tobytes(), "other.png": png.tobytes()})
    photo = vggbook.photo("upload")
    assert photo.name == "holiday.png"
    np.testing.assert_array_equal(photo.original, bgr[..., ::-1])
    assert capsys.readouterr().out == "2 files uploaded; using the first, holiday.png\n"


def test_upload_cancelled_or_not_an_image(monkeypatch):
    _fake_colab(monkeypatch, {})
    with pytest.raises(PhotoError, match="no file was uploaded: run the cell again and choose a photo"):
        vggbook.photo("upload")
    _fake_colab(monkeypatch, {"notes.txt": b"shopping list\n"})
    with pytest.raises(PhotoError, match="notes.txt is not an image OpenCV can read: it is text"):
        vggbook.photo("upload")


# ---------------------------------------------------------------------------------------------
# URLs, against an HTTP server on 127.0.0.1 in a thread


@pytest.fixture
def server():
    """`routes[path] = (body, content_length or None, content_type)`; a Content-Length larger than the body
    makes the server close the connection mid-transfer; None sends no Content-Length at all."""
    import http.server
    import threading

    routes: dict[str, tuple[bytes, int | None, str]] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the name http.server calls)
            if self.path not in routes:
                self.send_error(404)
                return
            body, length, content_type = routes[self.path]
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            if length is not None:
                self.send_header("Content-Length", str(length))
            self.end_headers()
            self.wfile.write(body)  # HTTP/1.0: the connection closes after the body, short or not

        def log_message(self, *args):  # keep the test's stderr clean
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    httpd.routes = routes
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.stop = lambda: (httpd.shutdown(), httpd.server_close(), thread.join())
    yield httpd
    if thread.is_alive():
        httpd.stop()


@pytest.fixture
def online(tmp_path, monkeypatch):
    """An empty private Keras cache with downloads allowed (to 127.0.0.1 only: the tests name the URL).
    Returns the photo cache folder."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.delenv("VGGBOOK_OFFLINE")
    monkeypatch.delenv("VGGBOOK_PHOTO", raising=False)
    return tmp_path / "photos"


def _files(folder) -> list:
    return sorted(folder.iterdir()) if folder.exists() else []


CAT_BGR = _noise(300, 400, seed=3)
CAT_JPEG = _jpeg_bytes(CAT_BGR, cv2.IMWRITE_JPEG_QUALITY, 90)


def test_a_url_is_downloaded_once_and_reused_offline(server, online, monkeypatch, capsys):
    server.routes["/pets/cat.jpg"] = (CAT_JPEG, len(CAT_JPEG), "image/jpeg")
    url = f"{server.url}/pets/cat.jpg"
    photo = vggbook.photo(url)
    assert photo.name == url and photo.original.shape == (300, 400, 3)
    np.testing.assert_array_equal(photo.original, cv2.imdecode(np.frombuffer(CAT_JPEG, np.uint8), 1)[..., ::-1])
    np.testing.assert_array_equal(photo.image, keras_evaluation_crop(photo.original))
    out, err = capsys.readouterr()
    size = f"{len(CAT_JPEG) / 1000:.1f} kB"
    assert re.fullmatch(rf"Downloaded cat\.jpg \({re.escape(size)}\) from 127\.0\.0\.1 in \d+\.\d s\n", out), out
    assert err == ""
    (cached,) = _files(online)  # one file, no temporary one beside it
    assert cached.name.endswith("-cat.jpg") and cached.read_bytes() == CAT_JPEG
    server.stop()
    again = vggbook.photo(url)  # from the cache: the server is gone
    np.testing.assert_array_equal(again.image, photo.image)
    monkeypatch.setenv("VGGBOOK_OFFLINE", "1")
    np.testing.assert_array_equal(vggbook.photo(url).image, photo.image)
    assert capsys.readouterr() == ("", "")
    assert _files(online) == [cached]


def test_two_urls_with_the_same_file_name_are_cached_apart(server, online):
    ok, png = cv2.imencode(".png", _noise(64, 64, seed=5))
    server.routes["/a/photo.png"] = (png.tobytes(), len(png), "image/png")
    server.routes["/b/photo.png"] = (CAT_JPEG, len(CAT_JPEG), "image/jpeg")  # a JPEG named .png: bytes decide
    a, b = vggbook.photo(f"{server.url}/a/photo.png"), vggbook.photo(f"{server.url}/b/photo.png")
    assert a.original.shape == (64, 64, 3) and b.original.shape == (300, 400, 3)
    assert len(_files(online)) == 2


def test_a_damaged_cached_photo_is_downloaded_again(server, online, capsys):
    server.routes["/cat.jpg"] = (CAT_JPEG, len(CAT_JPEG), "image/jpeg")
    url = f"{server.url}/cat.jpg"
    vggbook.photo(url)
    (cached,) = _files(online)
    cached.write_bytes(CAT_JPEG[:1000])  # e.g. damaged by hand
    capsys.readouterr()
    assert vggbook.photo(url).original.shape == (300, 400, 3)
    removed, downloaded = capsys.readouterr().out.splitlines()
    assert removed.startswith(f"Removed {cached} from the photo cache ({url} is a truncated JPEG file")
    assert downloaded.startswith("Downloaded cat.jpg (")
    assert _files(online) == [cached] and cached.read_bytes() == CAT_JPEG


def test_a_url_of_an_html_page_says_so(server, online):
    page = b"<!doctype html>\n<html><head><title>Cat</title></head><body><img src='cat.jpg'></body></html>\n"
    server.routes["/cat"] = (page, len(page), "text/html; charset=utf-8")
    url = f"{server.url}/cat"
    with pytest.raises(PhotoError) as raised:
        vggbook.photo(url)
    assert str(raised.value) == (
        f"{url} is not an image but an HTML page (Content-Type text/html): pass the address of the image "
        "itself (in the browser, right-click the photo and copy the image address)"
    )
    assert _files(online) == []


def test_a_url_of_something_else_names_its_content_type(server, online):
    blob = bytes(range(256)) * 8
    server.routes["/cat.jpg"] = (blob, len(blob), "application/octet-stream")
    url = f"{server.url}/cat.jpg"
    with pytest.raises(PhotoError, match=re.escape(f"{url} is not an image OpenCV can read: it is of Content-Type ")):
        vggbook.photo(url)
    assert _files(online) == []


def test_a_url_that_answers_404(server, online):
    url = f"{server.url}/nothing.jpg"
    with pytest.raises(PhotoError) as raised:
        vggbook.photo(url)
    assert str(raised.value) == (
        f"download of {url} failed: HTTP 404 Not Found; check the address, or save the photo and pass its path"
    )
    assert _files(online) == []


def test_a_transfer_cut_short_leaves_nothing(server, online):
    server.routes["/cat.jpg"] = (CAT_JPEG[:5000], len(CAT_JPEG), "image/jpeg")  # announces all, sends 5,000 bytes
    url = f"{server.url}/cat.jpg"
    with pytest.raises(PhotoError) as raised:
        vggbook.photo(url)
    assert str(raised.value) == (
        f"download of {url} was cut short: 5,000 of {len(CAT_JPEG):,} bytes arrived; try again, or save the "
        "photo and pass its path"
    )
    assert _files(online) == []


def test_a_truncated_photo_without_content_length_leaves_nothing(server, online):
    server.routes["/cat.jpg"] = (CAT_JPEG[:5000], None, "image/jpeg")  # nothing to compare the length with
    url = f"{server.url}/cat.jpg"
    with pytest.raises(PhotoError, match=re.escape(f"{url} is a truncated JPEG file: it ends before")):
        vggbook.photo(url)
    assert _files(online) == []


def test_a_url_of_a_photo_too_small_leaves_nothing(server, online):
    ok, png = cv2.imencode(".png", _noise(20, 20))
    server.routes["/icon.png"] = (png.tobytes(), len(png), "image/png")
    url = f"{server.url}/icon.png"
    with pytest.raises(PhotoError, match=re.escape(f"{url} is 20×20 pixels, too small for VGG16")):
        vggbook.photo(url)
    assert _files(online) == []


def test_an_interrupted_download_leaves_nothing(server, online, monkeypatch):
    server.routes["/cat.jpg"] = (CAT_JPEG, len(CAT_JPEG), "image/jpeg")

    def interrupt(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(vggbook.downloads.os, "replace", interrupt)  # the moment before the file is kept
    with pytest.raises(KeyboardInterrupt):
        vggbook.photo(f"{server.url}/cat.jpg")
    assert _files(online) == []


def test_offline_refuses_at_once(server, online, monkeypatch):
    server.routes["/cat.jpg"] = (CAT_JPEG, len(CAT_JPEG), "image/jpeg")
    monkeypatch.setenv("VGGBOOK_OFFLINE", "1")
    url = f"{server.url}/cat.jpg"
    with pytest.raises(PhotoError) as raised:
        vggbook.photo(url)
    assert str(raised.value) == (
        f"cannot download {url}: no network (VGGBOOK_OFFLINE is set); save the photo and pass its path"
    )
    assert _files(online) == []


def test_an_unreachable_host_says_so(online):
    url = "http://127.0.0.1:9/cat.jpg"  # the discard port: nothing listens
    with pytest.raises(PhotoError) as raised:
        vggbook.photo(url)
    assert str(raised.value) == f"cannot download {url}: Connection refused; save the photo and pass its path"
    assert _files(online) == []


def test_a_name_that_does_not_resolve_is_no_network(online, monkeypatch):
    import socket

    def no_dns(*args, **kwargs):
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(socket, "create_connection", no_dns)
    url = "https://photos.example.org/cat.jpg"
    with pytest.raises(PhotoError) as raised:
        vggbook.photo(url)
    assert str(raised.value) == (
        f"cannot download {url}: no network (the name does not resolve); save the photo and pass its path"
    )


# ---------------------------------------------------------------------------------------------
# VGGBOOK_PHOTO: the photo every `photo()` without a source reads


def test_vggbook_photo_names_a_file(tmp_path, monkeypatch):
    bgr = _noise(120, 160)
    path = _write(tmp_path / "mine.png", bgr)
    monkeypatch.setenv("VGGBOOK_PHOTO", path)
    photo = vggbook.photo()
    assert photo.name == "mine.png"
    np.testing.assert_array_equal(photo.original, bgr[..., ::-1])
    assert vggbook.photo("coffee").name == "coffee (scikit-image)"  # a source given still wins


def test_vggbook_photo_names_a_url(server, online, monkeypatch):
    server.routes["/cat.jpg"] = (CAT_JPEG, len(CAT_JPEG), "image/jpeg")
    monkeypatch.setenv("VGGBOOK_PHOTO", f"{server.url}/cat.jpg")
    photo = vggbook.photo()
    assert photo.name == f"{server.url}/cat.jpg" and photo.original.shape == (300, 400, 3)


def test_an_empty_vggbook_photo_means_the_cat(monkeypatch):
    monkeypatch.setenv("VGGBOOK_PHOTO", "")
    assert vggbook.photo().name == "chelsea (scikit-image)"


def test_a_vggbook_photo_that_is_missing_names_it(tmp_path, monkeypatch):
    monkeypatch.setenv("VGGBOOK_PHOTO", str(tmp_path / "gone.jpg"))
    with pytest.raises(PhotoError, match=re.escape(f"no photo at {tmp_path / 'gone.jpg'}")):
        vggbook.photo()


def test_a_phone_photo_is_area_averaged_before_the_bicubic_shrink():
    # 4032×3024 pixel stripes one pixel wide: far finer than a 341×256 image can hold, so the honest result is
    # flat grey. Bicubic interpolation alone shrinking 12× folds them into strong false stripes.
    h, w = 3024, 4032
    stripes = np.zeros((h, w, 3), np.uint8)
    stripes[:, ::2] = 255
    cubic_only = cv2.resize(stripes, (w * 256 // h, 256), interpolation=cv2.INTER_CUBIC)
    assert cubic_only.std() > 40  # the aliasing the area step prevents
    photo = vggbook.photo(stripes)
    assert photo.resized == (341, 256)
    assert photo.image.std() < 2 and abs(photo.image.mean() - 127.5) < 2
    # the crop still covers the central 224/256 of the shorter side
    x0, y0, x1, y1 = photo.box
    step = w / photo.resized[0]  # original pixels per resized pixel: the recipe rounds to whole ones
    assert y1 - y0 + 1 == round(3024 * 224 / 256) and abs((x0 + x1) / 2 - (w - 1) / 2) <= step


def test_default_photo_is_what_a_chapter_shows_without_one(monkeypatch):
    monkeypatch.delenv("VGGBOOK_PHOTO", raising=False)
    assert vggbook.DEFAULT_PHOTO in vggbook.SAMPLES
    np.testing.assert_array_equal(vggbook.sample_image(), vggbook.sample_image(vggbook.DEFAULT_PHOTO))
    assert vggbook.photo().name == vggbook.photo(vggbook.DEFAULT_PHOTO).name
