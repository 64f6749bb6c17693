"""Photographs in, VGG inputs out: the reader's photo (file, URL, Colab upload, sample), read with OpenCV,
resized and centre-cropped as Keras' ImageNet evaluation does, caffe preprocessing.

Chapter "block1" explains each step; the chapters call `photo` or `sample_image`, then `preprocess`.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

import cv2
import numpy as np

from vggbook import downloads
from vggbook.weights import OFFLINE_ENV, keras_cache_dir

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# The per-channel means that `keras.applications.vgg16.preprocess_input` subtracts, in BGR order:
# VGG was trained in Caffe on BGR images with the ImageNet mean removed, not scaled to [0, 1].
CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68], dtype=np.float32)
SAMPLES = ("chelsea", "coffee", "astronaut", "rocket")
# A wider set of scikit-image's photographs (all shipped in its wheel, so offline): what the block chapters
# search for the patches that excite a channel most. Colour photos first, then grey ones (read as RGB).
GALLERY = (
    *SAMPLES,
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "colorwheel",
    "camera",
    "coins",
    "clock",
    "brick",
)
PHOTO_ENV = "VGGBOOK_PHOTO"  # a path or URL: the photo `photo()` reads when it is given none
DEFAULT_PHOTO = "chelsea"  # the photo a chapter shows when the reader gives none
# VGG16's smallest input: its five 2×2 max-pools halve 32 pixels down to 1 (Keras' VGG16 refuses less too).
MIN_SIDE = 32
# Keras' ImageNet evaluation (keras-team/keras-applications issues #88 and #99, the maintainer's recipe):
# the shorter side resized to 256 with cv2.INTER_CUBIC, then the central 224×224.
EVAL_SHORTER, EVAL_CROP = 256, 224


class PhotoError(ValueError):
    """A photo that cannot be used; the message names it, the problem and what to do instead."""


def _to_rgb_uint8(image: np.ndarray, source: str, *, bgr: bool) -> np.ndarray:
    """Any grey, RGB(A) or BGR(A) image of uint8, uint16 or float in [0, 1] → RGB uint8."""
    if image.dtype == np.uint16:
        image = (image // 257).astype(np.uint8)
    elif image.dtype.kind == "f":
        if not np.isfinite(image).all():
            raise PhotoError(f"{source}: image contains NaN or infinite values")
        scale = 255.0 if image.max(initial=0.0) <= 1.0 else 1.0
        image = np.clip(image * scale, 0, 255).round().astype(np.uint8)
    elif image.dtype == np.bool_:
        image = image.astype(np.uint8) * 255
    elif image.dtype != np.uint8:
        raise PhotoError(f"{source}: unsupported pixel type {image.dtype}; expected uint8, uint16 or float")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise PhotoError(f"{source}: expected a grey, RGB or RGBA image, got an array of shape {image.shape}")
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB if bgr else cv2.COLOR_RGBA2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if bgr else image


# ---------------------------------------------------------------------------------------------------------
# The crop


def _crop(image: np.ndarray, size: int) -> tuple[np.ndarray, tuple[int, int, int, int], tuple[int, int]]:
    """Keras' ImageNet evaluation crop, generalised to `size`: the shorter side resized to
    round(size·256/224) with cv2.INTER_CUBIC (the longer in proportion, rounded down, as the maintainer's
    code does; a photo whose shorter side exceeds 512 is first area-averaged, against aliasing), then the
    central `size`×`size` (offsets rounded down). Returns the crop, its box in the
    original's pixels (x0, y0, x1, y1, inclusive: the pixels whose centres it covers) and the resized
    (width, height)."""
    if not isinstance(size, int | np.integer) or size < 1:
        raise ValueError(f"size must be a positive number of pixels, got {size!r}")
    h, w = image.shape[:2]
    if min(h, w) < 1:
        raise PhotoError(f"empty image of shape {image.shape}")
    shorter = round(size * EVAL_SHORTER / EVAL_CROP)
    new_w, new_h = w * shorter // min(h, w), h * shorter // min(h, w)
    if min(h, w) > 2 * max(shorter, EVAL_SHORTER):
        # A phone photo (4032×3024) shrunk 12× by bicubic interpolation aliases: detail finer than the
        # result can hold folds into false patterns. Area-averaging it first to twice the target keeps the
        # bicubic step to a shrink of at most 2×; ImageNet-sized photos (~500×375) take Keras' recipe unchanged.
        image = cv2.resize(
            image, (w * 2 * shorter // min(h, w), h * 2 * shorter // min(h, w)), interpolation=cv2.INTER_AREA
        )
    if (new_w, new_h) != image.shape[1::-1]:
        image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_CUBIC)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    crop = np.ascontiguousarray(image[top : top + size, left : left + size])
    sx, sy = w / new_w, h / new_h  # original pixels per resized pixel
    # the original's pixels whose centres (i + 0.5) fall inside the crop's span [left·sx, (left + size)·sx)
    box = (
        math.ceil(left * sx - 0.5),
        math.ceil(top * sy - 0.5),
        math.ceil((left + size) * sx - 0.5) - 1,
        math.ceil((top + size) * sy - 0.5) - 1,
    )
    return crop, box, (new_w, new_h)


def resize_and_crop(image: np.ndarray, size: int = 224) -> np.ndarray:
    """As Keras' ImageNet evaluation: shorter side to round(size·256/224) (256 for 224) with bicubic
    interpolation, then the central `size`×`size` square (chapter "block1")."""
    return _crop(np.asarray(image), size)[0]


# ---------------------------------------------------------------------------------------------------------
# The photo


@dataclass(frozen=True, eq=False, repr=False)
class Photo:
    """A photo ready for the network: `image` is what it sees (RGB uint8, size×size×3); `original` the
    photo as read (RGB uint8); `box` the crop in the original's pixels (x0, y0, x1, y1, inclusive);
    `resized` the original's (width, height) after resizing, before the crop. `np.asarray(photo)` is
    `photo.image`. Every chapter that shows a photo (made by `photo`)."""

    image: np.ndarray
    original: np.ndarray
    name: str
    box: tuple[int, int, int, int]
    resized: tuple[int, int]

    @property
    def summary(self) -> str:
        """One line for the page: where the photo came from and what was done to it."""
        (h, w), (rw, rh), s = self.original.shape[:2], self.resized, self.image.shape[0]
        return f"{self.name}: {w}×{h} pixels, resized to {rw}×{rh} and centre-cropped to {s}×{s}"

    def __str__(self) -> str:
        return self.summary

    def __repr__(self) -> str:
        return f"Photo({self.summary})"

    def __array__(self, dtype: np.dtype | None = None, copy: bool | None = None) -> np.ndarray:
        return self.image if dtype is None else self.image.astype(dtype)

    def plot(self) -> Figure:
        """ONE figure: the original with the crop drawn on it, beside the input the network sees."""
        import matplotlib.pyplot as plt

        from vggbook.plotting import PAGE_WIDTH, draw_box

        h, w = self.original.shape[:2]
        s = self.image.shape[0]
        # Side by side and equally high (1.8–2.7 in), the figure no wider than the page; the original's
        # panel at least square (room for its title) and at most what the page leaves: a panorama or a
        # portrait is letterboxed in it.
        panel = float(np.clip((PAGE_WIDTH - 0.3) / (w / h + 1), 1.8, 2.7))
        left = float(np.clip(w / h, 1, (PAGE_WIDTH - 0.3) / panel - 1))
        figsize = (panel * (left + 1) + 0.3, panel + 0.6)
        fig, axes = plt.subplots(1, 2, figsize=figsize, width_ratios=[left, 1], layout="constrained")
        axes[0].imshow(self.original)
        draw_box(axes[0], self.box)
        name = self.name if len(self.name) <= 48 else self.name[:45] + "…"
        axes[0].set_title(f"{name}: {w}×{h} pixels\nyellow: the crop the network sees", fontsize=9)
        axes[1].imshow(self.image)
        axes[1].set_title(f"the network's input\n{s}×{s} pixels", fontsize=9)
        for ax in axes:
            ax.set_axis_off()
        return fig


def photo(source: str | os.PathLike | np.ndarray | Photo | None = None, *, size: int = 224) -> Photo:
    """The reader's photo, ready for the network (every chapter that shows a photo, in one line).

    `source`: None for `$VGGBOOK_PHOTO` (a path or URL) if set, else scikit-image's cat "chelsea"; a name
    of `GALLERY`; a file path (JPEG, PNG, WebP…; grey, alpha and 16 bits are converted); an http(s) URL
    (downloaded once into the Keras cache's `photos` folder, reused offline); an RGB array; "upload"
    (Colab's file picker); or a `Photo` (cropped again at `size`). Any size and shape down to 32 pixels
    on the shorter side; resized and centre-cropped to `size` as Keras' ImageNet evaluation does
    (`resize_and_crop`). Anything unusable raises `PhotoError`: one sentence naming the photo, the
    problem and the fix.
    """
    if isinstance(source, Photo):  # e.g. a helper handed the chapter's photo: the same photo, at `size`
        original, name = source.original, source.name
    else:
        if source is None:
            source = os.environ.get(PHOTO_ENV) or DEFAULT_PHOTO
        original, name, where = _read(source)
        _check_size(original, where)
    image, box, resized = _crop(original, size)
    return Photo(image, original, name, box, resized)


def _check_size(image: np.ndarray, name: str) -> None:
    h, w = image.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise PhotoError(
            f"{name} is {w}×{h} pixels, too small for VGG16: its shorter side must be at least {MIN_SIDE} "
            f"pixels (five 2×2 poolings halve {MIN_SIDE} to 1); pass a larger photo"
        )


def load_image(source: str | os.PathLike | np.ndarray, size: int = 224) -> np.ndarray:
    """A path (or URL, or sample name) or an RGB array → RGB uint8 array (size, size, 3): `photo(source,
    size=size).image`, cropped as Keras' ImageNet evaluation does. Chapter "block1"."""
    if not isinstance(source, str | os.PathLike | np.ndarray):
        raise TypeError(f"load_image takes a path or a NumPy array, not {type(source).__name__}")
    return photo(source, size=size).image


def sample_image(name: str = DEFAULT_PHOTO, size: int = 224) -> np.ndarray:
    """One of the photographs scikit-image ships (offline), centre-cropped to `size` like every photo:
    chelsea, coffee, astronaut, rocket (`SAMPLES`) or another of `GALLERY`. Every chapter."""
    if name not in GALLERY:
        raise PhotoError(f"unknown sample image {name!r}; choose one of {', '.join(GALLERY)}")
    return photo(name, size=size).image


def _read(source: str | os.PathLike | np.ndarray) -> tuple[np.ndarray, str, str]:
    """The photo as read (RGB uint8), its name, and how error messages call it (the path as given, the
    URL), from any source `photo` takes."""
    if isinstance(source, np.ndarray):
        return _to_rgb_uint8(source, "array", bgr=False), "array", "array"
    if isinstance(source, str) and source in GALLERY:
        import skimage.data  # imported here: only the sample photos need scikit-image

        name = f"{source} (scikit-image)"
        return _to_rgb_uint8(getattr(skimage.data, source)(), source, bgr=False), name, name
    if isinstance(source, str) and source == "upload":
        return _upload()
    if isinstance(source, str) and re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", source):
        if urlsplit(source).scheme.lower() not in ("http", "https"):
            raise PhotoError(f"{source}: only http:// and https:// addresses can be downloaded; pass a path instead")
        return _fetch(source), source, source
    if isinstance(source, str | os.PathLike):
        path = Path(source).expanduser()
        return _read_file(path), path.name, str(path)
    raise TypeError(f"photo takes a path, a URL, a sample name, 'upload' or an RGB array, not {type(source).__name__}")


def _read_file(path: Path) -> np.ndarray:
    if not path.exists():
        hint = f"; the sample photos are {', '.join(GALLERY)}" if not path.suffix else ""
        raise PhotoError(f"no photo at {path}: the file does not exist (relative to {Path.cwd()}){hint}")
    if path.is_dir():
        raise PhotoError(f"{path} is a folder, not a photo: pass the path of an image file in it")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise PhotoError(f"cannot read {path}: {err.strerror or err}") from None
    return _decode(data, str(path))


def _upload() -> tuple[np.ndarray, str, str]:
    """Colab's file picker; the first file chosen."""
    try:
        from google.colab import files  # only in Colab
    except ImportError:
        raise PhotoError(
            "photo('upload') works in Google Colab only, where it opens a file picker; here, pass the "
            "photo's path or URL instead, e.g. vggbook.photo('my_photo.jpg')"
        ) from None
    uploaded = files.upload()
    if not uploaded:
        raise PhotoError("no file was uploaded: run the cell again and choose a photo, or pass a path or URL")
    name, data = next(iter(uploaded.items()))
    if len(uploaded) > 1:
        print(f"{len(uploaded)} files uploaded; using the first, {name}", flush=True)
    return _decode(bytes(data), name), name, name


# ---------------------------------------------------------------------------------------------------------
# Decoding bytes: truncation found before OpenCV sees it, OpenCV's warnings silenced, non-images named


def _jpeg_complete(data: bytes) -> bool:
    """Whether the JPEG's segments run to its end-of-image marker FFD9: walked segment by segment (by
    their lengths) and through each scan's entropy-coded data, so that an EXIF thumbnail's own FFD9 or
    bytes after the image (a phone's motion photo) do not mislead. False only when the data ends first."""
    i, n = 2, len(data)
    while True:
        if i >= n:
            return False
        if data[i] != 0xFF:
            return True  # not where a marker must be: damaged, not truncated; OpenCV judges it
        while i < n and data[i] == 0xFF:  # fill bytes
            i += 1
        if i >= n:
            return False
        marker = data[i]
        i += 1
        if marker == 0xD9:
            return True
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            continue
        if i + 2 > n:
            return False
        i += int.from_bytes(data[i : i + 2], "big")
        if marker != 0xDA:
            continue
        while True:  # start of scan: entropy-coded data up to the next marker (FF00 is a stuffed FF)
            j = data.find(b"\xff", i)
            if j < 0 or j + 1 >= n:
                return False
            if data[j + 1] == 0x00 or 0xD0 <= data[j + 1] <= 0xD7:
                i = j + 2
                continue
            i = j
            break


def _png_complete(data: bytes) -> bool:
    """Whether the PNG's chunks run to its IEND chunk."""
    i, n = 8, len(data)
    while i + 8 <= n:
        length, kind = int.from_bytes(data[i : i + 4], "big"), data[i + 4 : i + 8]
        i += 12 + length  # length, type, data, CRC
        if kind == b"IEND":
            return i <= n
    return False


def _truncation(data: bytes) -> str | None:
    """How a JPEG, PNG or WebP file is cut short (OpenCV would decode what is there, warning only on
    stderr), or None."""
    if data.startswith(b"\xff\xd8\xff") and not _jpeg_complete(data):
        return "JPEG file: it ends before its end-of-image marker (FFD9)"
    if data.startswith(b"\x89PNG\r\n\x1a\n") and not _png_complete(data):
        return "PNG file: it ends before its IEND chunk"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        announced = int.from_bytes(data[4:8], "little") + 8
        if announced > len(data):
            return f"WebP file: its RIFF header announces {announced:,} bytes, the file has {len(data):,}"
    return None


def _describe(data: bytes, content_type: str) -> str:
    """What bytes that OpenCV cannot decode are, in words, from their first bytes or their content type."""
    head = data[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    media = f" (Content-Type {content_type})" if content_type else ""
    if not data:
        return "an empty file"
    if head.startswith(b"<!doctype html") or b"<html" in head:
        return f"an HTML page{media}"
    if b"<svg" in head:
        return f"an SVG drawing{media}, which OpenCV cannot read: export it as PNG"
    if data.startswith(b"%PDF"):
        return f"a PDF document{media}"
    if data[4:8] == b"ftyp" and data[8:12] in (b"heic", b"heix", b"mif1", b"msf1", b"hevc", b"avif"):
        kind = "an AVIF" if data[8:12] == b"avif" else "a HEIC (iPhone)"
        return f"{kind} image{media}, which OpenCV cannot read: convert it to JPEG or PNG"
    if data.startswith(b"GIF8"):
        return f"a GIF image{media}, which this OpenCV cannot read: convert it to PNG"
    for magic, kind in ((b"\xff\xd8\xff", "JPEG"), (b"\x89PNG", "PNG"), (b"RIFF", "WebP")):
        if data.startswith(magic):
            return f"a damaged {kind} file{media}: it starts like one, but OpenCV cannot decode it"
    try:
        text = data[:1024].decode("utf-8")
    except UnicodeDecodeError:
        text = ""
    if text and all(c.isprintable() or c.isspace() for c in text):
        return f"text{media}"
    return (
        f"of Content-Type {content_type}" if content_type else f"of an unknown format (first bytes {data[:8].hex(' ')})"
    )


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence what libjpeg, libpng and OpenCV's logger write straight to file descriptor 2 (not through
    sys.stderr: e.g. 'Corrupt JPEG data: 2 extraneous bytes before marker' or libpng's iCCP warnings)."""
    try:
        saved = os.dup(2)
    except OSError:  # no file descriptor 2 to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _decode(data: bytes, where: str, content_type: str = "") -> np.ndarray:
    """Bytes of an image file → RGB uint8 (EXIF orientation applied, grey, alpha and 16 bits converted),
    or `PhotoError` naming `where`: truncated, not an image (saying what it is instead)."""
    truncated = _truncation(data)
    if truncated is not None:
        raise PhotoError(f"{where} is a truncated {truncated}; the file is incomplete: copy or download it again")
    raw = None
    if data:  # imdecode asserts on an empty buffer
        with _quiet_stderr():
            try:  # not IMREAD_UNCHANGED: that would ignore a phone photo's EXIF orientation
                raw = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_ANYCOLOR | cv2.IMREAD_ANYDEPTH)
            except cv2.error:  # e.g. more pixels than OpenCV's limit
                raw = None
    if raw is None:
        what = _describe(data, content_type)
        if where.startswith(("http://", "https://")) and what.startswith("an HTML page"):
            raise PhotoError(
                f"{where} is not an image but {what}: pass the address of the image itself "
                "(in the browser, right-click the photo and copy the image address)"
            )
        fix = "" if "OpenCV cannot" in what else ": pass a JPEG, PNG or WebP photo"
        raise PhotoError(f"{where} is not an image OpenCV can read: it is {what}{fix}")
    return _to_rgb_uint8(raw, where, bgr=True)


# ---------------------------------------------------------------------------------------------------------
# Photos from URLs: downloaded once into the Keras cache


def photo_cache_dir() -> Path:
    """Where downloaded photos are kept: the Keras cache's `photos` folder (every chapter, through `photo`)."""
    return keras_cache_dir() / "photos"


def _cache_path(url: str) -> Path:
    """A URL's place in the cache: a hash of the whole URL, then its file name (made safe)."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", unquote(urlsplit(url).path.rsplit("/", 1)[-1]))[-80:] or "photo"
    return photo_cache_dir() / f"{hashlib.sha256(url.encode('utf8')).hexdigest()[:16]}-{name}"


def _fetch(url: str) -> np.ndarray:
    """The photo at `url`: from the cache when a decodable copy is there (no network), else downloaded
    by `downloads.download` and kept only when complete and decodable."""
    local = _cache_path(url)
    if local.is_file():
        try:
            return _decode(local.read_bytes(), url)
        except (PhotoError, OSError) as err:  # a damaged copy would block every later run
            local.unlink(missing_ok=True)
            print(f"Removed {local} from the photo cache ({err}); downloading it again", flush=True)
    fix = "save the photo and pass its path"
    if os.environ.get(OFFLINE_ENV, "") not in ("", "0"):
        raise PhotoError(f"cannot download {url}: no network ({OFFLINE_ENV} is set); {fix}")
    why = downloads.unreachable(url)
    if why is not None:
        raise PhotoError(f"cannot download {url}: {why}; {fix}")
    decoded: list[np.ndarray] = []

    def check(part: Path, content_type: str) -> None:  # kept only if the network could use it
        decoded.append(_decode(part.read_bytes(), url, content_type))
        _check_size(decoded[0], url)

    try:
        downloads.download(url, local, check=check, name=unquote(urlsplit(url).path.rsplit("/", 1)[-1]) or url)
    except downloads.DownloadError as err:
        again = "check the address" if err.status is not None else "try again"
        raise PhotoError(f"{err}; {again}, or {fix}") from None
    return decoded[0]


# ---------------------------------------------------------------------------------------------------------
# Caffe preprocessing


def preprocess(image: np.ndarray) -> np.ndarray:
    """RGB image(s) in 0–255 → float32 batch (N, H, W, 3) exactly as
    `keras.applications.vgg16.preprocess_input`: RGB→BGR, minus the caffe means. Chapter "block1"."""
    image = np.asarray(image)
    if image.ndim == 3:
        image = image[np.newaxis]
    if image.ndim != 4 or image.shape[-1] != 3:
        raise ValueError(f"expected an RGB image (H, W, 3) or batch (N, H, W, 3), got shape {image.shape}")
    return image[..., ::-1].astype(np.float32) - CAFFE_MEAN_BGR


def deprocess(batch: np.ndarray) -> np.ndarray:
    """Invert `preprocess`: BGR minus means → RGB uint8, batch axis dropped when it is one.
    Chapters "block1" and "classifier"."""
    batch = np.asarray(batch, dtype=np.float32)
    rgb = np.clip((batch + CAFFE_MEAN_BGR)[..., ::-1], 0, 255).round().astype(np.uint8)
    return rgb[0] if rgb.ndim == 4 and rgb.shape[0] == 1 else rgb
