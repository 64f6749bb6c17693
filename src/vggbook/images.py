"""Photographs in, VGG inputs out: load with OpenCV, crop to 224, caffe preprocessing.

Chapter "block1" explains each step; every chapter calls `sample_image` and `preprocess`.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

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


def _to_rgb_uint8(image: np.ndarray, source: str, *, bgr: bool) -> np.ndarray:
    """Any grey, RGB(A) or BGR(A) image of uint8, uint16 or float in [0, 1] → RGB uint8."""
    if image.dtype == np.uint16:
        image = (image // 257).astype(np.uint8)
    elif image.dtype.kind == "f":
        if not np.isfinite(image).all():
            raise ValueError(f"{source}: image contains NaN or infinite values")
        scale = 255.0 if image.max(initial=0.0) <= 1.0 else 1.0
        image = np.clip(image * scale, 0, 255).round().astype(np.uint8)
    elif image.dtype == np.bool_:
        image = image.astype(np.uint8) * 255
    elif image.dtype != np.uint8:
        raise ValueError(f"{source}: unsupported pixel type {image.dtype}; expected uint8, uint16 or float")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f"{source}: expected a grey, RGB or RGBA image, got an array of shape {image.shape}")
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB if bgr else cv2.COLOR_RGBA2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if bgr else image


def resize_and_crop(image: np.ndarray, size: int = 224) -> np.ndarray:
    """Scale the shorter side to `size` (OpenCV, area-averaged when shrinking) and cut the
    central `size`×`size` square (chapter "block1")."""
    h, w = image.shape[:2]
    scale = size / min(h, w)
    new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    resized = cv2.resize(image, (new_w, new_h), interpolation=interpolation)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return np.ascontiguousarray(resized[top : top + size, left : left + size])


def load_image(source: str | os.PathLike | np.ndarray, size: int = 224) -> np.ndarray:
    """A path or an array → RGB uint8 array of shape (size, size, 3), centre-cropped.

    Files are read by OpenCV (BGR, converted here); arrays are taken as RGB. Grey, RGBA and
    16-bit images are converted. A missing or non-image file raises an error naming it,
    where `cv2.imread` would return None. Chapter "block1".
    """
    if size < 1:
        raise ValueError(f"size must be a positive number of pixels, got {size}")
    if isinstance(source, np.ndarray):
        image = _to_rgb_uint8(source, "array", bgr=False)
    elif isinstance(source, str | os.PathLike):
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(f"image file not found: {path}")
        if not path.is_file():
            raise IsADirectoryError(f"not an image file but a folder: {path}")
        # np.fromfile + imdecode instead of imread: it reads non-ASCII paths too, and a
        # None from imdecode can only mean "not an image", never "not found".
        data = np.fromfile(path, dtype=np.uint8)
        raw = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None  # imdecode asserts on empty
        if raw is None:
            raise ValueError(f"not a readable image (OpenCV could not decode it): {path}")
        image = _to_rgb_uint8(raw, str(path), bgr=True)
    else:
        raise TypeError(f"load_image takes a path or a NumPy array, not {type(source).__name__}")
    if min(image.shape[:2]) < 1:
        raise ValueError(f"empty image of shape {image.shape}")
    return resize_and_crop(image, size)


def sample_image(name: str = "chelsea", size: int = 224) -> np.ndarray:
    """One of the photographs scikit-image ships (offline), centre-cropped to `size`: chelsea, coffee,
    astronaut, rocket (`SAMPLES`) or another of `GALLERY`. Every chapter."""
    if name not in GALLERY:
        raise ValueError(f"unknown sample image {name!r}; choose one of {', '.join(GALLERY)}")
    import skimage.data  # imported here: only the sample photos need scikit-image

    return load_image(getattr(skimage.data, name)(), size)


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
