"""The one image preprocessing path shared by training and serving.

Training (training/data.py) and every handler call `preprocess_bytes`, so a
photograph becomes the same tensor whichever side reads it. Photometric
normalisation (grey level, per-image standardisation) lives inside the model
graph, so it travels with the TFLite file and cannot drift either.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

MODEL_INPUT_SIZE = 224
LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601: RGB -> grey, wherever the project needs grey
ACCEPTED_FORMATS = frozenset({"JPEG", "PNG", "TIFF", "WEBP", "BMP"})
DEFAULT_MAX_PIXELS = 40_000_000  # a 6000x6000 fundus camera frame fits; bombs don't
DEFAULT_MAX_BYTES = 20 * 1024 * 1024
MIN_SIDE = 32


class ImageRejected(ValueError):
    """A client's image that can never succeed: reject it, never retry it."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class ImageInfo:
    format: str
    mode: str
    width: int
    height: int


def decode_image(
    data: bytes,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> tuple[Image.Image, ImageInfo]:
    """Decode untrusted bytes into an upright 8-bit RGB image, or raise ImageRejected."""
    if not data:
        raise ImageRejected("empty", "The image is empty (0 bytes).")
    if len(data) > max_bytes:
        raise ImageRejected(
            "too_large", f"The image is {len(data)} bytes; the limit is {max_bytes} bytes."
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageRejected("too_many_pixels", f"The image has more than {max_pixels} pixels.")
    except Exception:
        raise ImageRejected("not_an_image", "The data is not a readable image.")
    if image.format not in ACCEPTED_FORMATS:
        raise ImageRejected(
            "unsupported_format",
            f"Format {image.format} is not accepted; send JPEG, PNG, TIFF, WebP or BMP.",
        )
    info = ImageInfo(format=image.format, mode=image.mode, width=image.width, height=image.height)
    if image.width * image.height > max_pixels:
        raise ImageRejected(
            "too_many_pixels",
            f"The image is {image.width}x{image.height}; the limit is {max_pixels} pixels.",
        )
    if min(image.width, image.height) < MIN_SIDE:
        raise ImageRejected(
            "too_small", f"The image is {image.width}x{image.height}; each side needs {MIN_SIDE}+ px."
        )
    try:
        image.load()
    except Exception:
        raise ImageRejected("truncated", "The image data is truncated or corrupt.")
    try:
        image = ImageOps.exif_transpose(image)
        return _to_rgb(image), info
    except ImageRejected:
        raise
    except Exception:
        raise ImageRejected("unsupported_mode", f"Pixel mode {info.mode} cannot be converted to RGB.")


def _to_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # 16-bit and float greyscale: stretch the real range to 8 bits.
        array = np.asarray(image, dtype=np.float64)
        lo, hi = float(array.min()), float(array.max())
        scaled = (array - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(array)
        return Image.fromarray(np.round(scaled).astype(np.uint8), "L").convert("RGB")
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))  # fundus surround is black
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode in ("L", "P", "CMYK", "YCbCr", "1", "LAB", "HSV", "RGBX"):
        return image.convert("RGB")
    raise ImageRejected("unsupported_mode", f"Pixel mode {mode} is not supported.")


def to_model_input(image: Image.Image, size: int = MODEL_INPUT_SIZE) -> np.ndarray:
    """Pad to square on black (keeps the disc's shape), resize, scale to [0, 1] float32."""
    width, height = image.size
    if width != height:
        side = max(width, height)
        canvas = Image.new("RGB", (side, side), (0, 0, 0))
        canvas.paste(image, ((side - width) // 2, (side - height) // 2))
        image = canvas
    resized = image.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.float32) / 255.0


def preprocess_bytes(
    data: bytes,
    size: int = MODEL_INPUT_SIZE,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> tuple[np.ndarray, ImageInfo]:
    """Bytes in, (size, size, 3) float32 in [0, 1] out: the model's input contract."""
    image, info = decode_image(data, max_pixels=max_pixels, max_bytes=max_bytes)
    return to_model_input(image, size), info
