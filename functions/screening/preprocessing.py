"""The one image preprocessing path shared by training and serving.

Training (training/data.py, training/augment.py) and every handler call
`preprocess_bytes` (or, after decoding, `canonical_input`), so a photograph
becomes the same tensor whichever side reads it. Photometric normalisation
(grey level, per-image standardisation) lives inside the model graph.

Canonical acquisition: the model must not see how a photograph was framed or
taken, only the retina in it. So every image is
1. decoded at reduced size (JPEG DCT scaling, `reduce` for other formats):
   work and memory are bounded by the model input, not by the upload;
2. cropped to the bounding box of its non-black content: black padding,
   letterboxing and looser crops on a black frame vanish;
3. shrunk to a fixed working resolution (`WORKING_SIZE` px for the longer
   side) before any padding, padded to square: one fixed bandwidth for every
   photograph, whatever its pixel size;
4. scaled up to the model's input size and masked to the inscribed circle, so
   a rotated photograph's black corners and the frame's corners never reach
   the model.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np
from PIL import Image, ImageOps

MODEL_INPUT_SIZE = 224
# The fixed resolution every photograph passes through (the low-pass). Measured on ACRIMA
# (models/MODEL_CARD.md): 224 beat 160 on the acquisition-grouped cross-validation
# (AUC 0.920 +- 0.078 against 0.883 +- 0.109), the proxy for other hospitals.
WORKING_SIZE = 224
LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601: RGB -> grey, wherever the project needs grey
ACCEPTED_FORMATS = frozenset({"JPEG", "PNG", "TIFF", "WEBP", "BMP"})
DEFAULT_MAX_PIXELS = 40_000_000  # a 6000x6000 fundus camera frame fits; bombs don't
DEFAULT_MAX_BYTES = 20 * 1024 * 1024
MIN_SIDE = 32
# A disc photograph is about square; beyond 8:1 it is a strip, not a photograph.
MAX_ASPECT_RATIO = 8.0
# Content = grey level above this (0-255): fundus tissue is far brighter, JPEG ringing on a
# black border is not.
BLACK_LEVEL = 24
CONTENT_FRACTION = 0.02  # a row/column is content when this share of its pixels is
# Decode at least this many pixels on the shorter side. libjpeg's scaled IDCT is itself a
# low-pass, so decoding at the working resolution (not twice it) feeds the shrink the same
# bandwidth for less work (`bench/bench_preprocessing.py --decode-side 448` times both).
DECODE_SIDE = WORKING_SIZE
# Where more pixels than the model input are cut from a decode (the disc crop of a full-field
# photograph, training's simulated re-acquisitions): decode at twice the working resolution.
DETAIL_DECODE_SIDE = 2 * WORKING_SIZE
CORNER_FRACTION = 0.2  # corner squares of the content box measured for `corner_lit`


class ImageRejected(ValueError):
    """A client's image that can never succeed: reject it, never retry it."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class ImageInfo:
    """The upload's header facts, and (from preprocess_bytes) what the content box showed.

    `content_width`/`content_height`: the non-black content box in original pixels (0 when
    not measured); `corner_lit`: the lit share of the box's four corner squares (side
    CORNER_FRACTION of its shorter side): about 1 for a disc crop, about 0 for a full-field
    photograph's round fundus on black (-1 when not measured).
    """

    format: str
    mode: str
    width: int
    height: int
    content_width: int = 0
    content_height: int = 0
    corner_lit: float = -1.0


def _open_checked(data: bytes, max_pixels: int, max_bytes: int) -> tuple[Image.Image, ImageInfo]:
    """Open (header only) and apply every check that needs no pixels."""
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
    if max(image.width, image.height) > MAX_ASPECT_RATIO * min(image.width, image.height):
        raise ImageRejected(
            "extreme_aspect_ratio",
            f"The image is {image.width}x{image.height}; sides may differ by at most "
            f"{MAX_ASPECT_RATIO:g}:1 (send a photograph cropped around the optic disc).",
        )
    return image, info


def decode_image(
    data: bytes,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    min_side: int | None = DECODE_SIDE,
) -> tuple[Image.Image, ImageInfo]:
    """Decode untrusted bytes into an upright 8-bit RGB image, or raise ImageRejected.

    With `min_side`, the image is decoded at reduced size (shorter side still at
    least `min_side`, or as large as it is): JPEGs by DCT scaling, other formats by
    `reduce` before any conversion, so work and memory follow the model input.
    `min_side=None` decodes at full size.
    """
    image, info = _open_checked(data, max_pixels, max_bytes)
    try:
        if min_side is not None and image.format == "JPEG":
            scale = _reduction(image.size, min_side)
            image.draft(image.mode if image.mode in ("L", "RGB") else None,
                        (max(1, int(image.width / scale)), max(1, int(image.height / scale))))
        image.load()
    except Exception:
        raise ImageRejected("truncated", "The image data is truncated or corrupt.")
    try:
        ImageOps.exif_transpose(image, in_place=True)  # no copy of an upright image
        if min_side is not None:
            factor = int(_reduction(image.size, min_side))
            if factor >= 2 and image.mode in ("L", "LA", "RGB", "RGBA", "RGBX", "I", "F", "CMYK"):
                image = image.reduce(factor)
        return _to_rgb(image), info
    except ImageRejected:
        raise
    except Exception:
        raise ImageRejected("unsupported_mode", f"Pixel mode {info.mode} cannot be converted to RGB.")


def _reduction(size: tuple[int, int], min_side: int) -> float:
    """How much smaller the image may be decoded: the shorter side keeps `min_side` px
    unless the longer side would then exceed 2 x `min_side` (long strips), so the
    decoded pixels stay bounded by the model input whatever the aspect ratio."""
    return max(1.0, min(size) / min_side, max(size) / (2 * min_side))


def _to_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # 16-bit and float greyscale: stretch the real range to 8 bits.
        array = np.asarray(image, dtype=np.float32)
        lo, hi = float(array.min()), float(array.max())
        scaled = (array - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(array)
        return Image.fromarray(np.round(scaled).astype(np.uint8), "L").convert("RGB")
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))  # fundus surround is black
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode in ("L", "P", "CMYK", "YCbCr", "1", "LAB", "HSV", "RGBX"):
        return image.convert("RGB")
    raise ImageRejected("unsupported_mode", f"Pixel mode {mode} is not supported.")


def content_box(image: Image.Image) -> tuple[int, int, int, int] | None:
    """Bounding box (left, top, right, bottom) of the non-black content, None if there is none."""
    return _content(image)[0]


def _content(image: Image.Image) -> tuple[tuple[int, int, int, int] | None, np.ndarray]:
    """The content box and the lit (non-black) pixel mask it was found from."""
    bright = np.asarray(image.convert("L")) > BLACK_LEVEL
    lit = bright.view(np.uint8)  # summed as bytes: count_nonzero by axis converts to intp first
    rows = np.flatnonzero(lit.sum(axis=1, dtype=np.int32) > CONTENT_FRACTION * image.width)
    cols = np.flatnonzero(lit.sum(axis=0, dtype=np.int32) > CONTENT_FRACTION * image.height)
    if len(rows) == 0 or len(cols) == 0:
        return None, bright
    return (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1), bright


def corner_lit_share(bright: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """Mean lit share of the content box's four corner squares (side CORNER_FRACTION of its
    shorter side): a disc crop is lit to its corners, a round fundus on black is not."""
    left, top, right, bottom = box
    side = max(1, round(CORNER_FRACTION * min(right - left, bottom - top)))
    corners = (bright[top:top + side, left:left + side], bright[top:top + side, right - side:right],
               bright[bottom - side:bottom, left:left + side],
               bright[bottom - side:bottom, right - side:right])
    return float(np.mean([np.count_nonzero(corner) / corner.size for corner in corners]))


@lru_cache(maxsize=4)
def circle_mask(size: int) -> np.ndarray:
    """(size, size, 1) float32: 1 inside the inscribed circle, 0 outside, a 1-px soft edge."""
    centre = (size - 1) / 2.0
    y, x = np.mgrid[0:size, 0:size]
    radius = np.hypot(x - centre, y - centre)
    mask = np.clip(size / 2.0 - radius, 0.0, 1.0).astype(np.float32)
    mask.setflags(write=False)
    return mask[..., None]


def canonical_input(image: Image.Image, size: int = MODEL_INPUT_SIZE,
                    working_size: int = WORKING_SIZE) -> np.ndarray:
    """Decoded RGB image -> (size, size, 3) float32 in [0, 1]: crop to content, shrink to the
    working resolution (before any padding), pad to square, scale up, mask to the circle."""
    return _canonical(image, size, working_size)[0]


def _canonical(image: Image.Image, size: int, working_size: int,
               content: tuple[tuple[int, int, int, int] | None, np.ndarray] | None = None
               ) -> tuple[np.ndarray, tuple[int, int, int, int], float]:
    """canonical_input, with the content box and its corners' lit share (for the quality gate).
    `content`: `_content(image)` when the caller has it already."""
    box, bright = content or _content(image)
    if box is None:
        raise ImageRejected("blank_image", "The image has no content: it is black or nearly so.")
    image = image.crop(box)
    width, height = image.size
    scale = working_size / max(width, height)
    shrunk = image.resize((max(1, round(width * scale)), max(1, round(height * scale))),
                          Image.Resampling.BILINEAR, reducing_gap=2.0)
    if shrunk.size != (working_size, working_size):
        canvas = Image.new("RGB", (working_size, working_size), (0, 0, 0))
        canvas.paste(shrunk, ((working_size - shrunk.width) // 2, (working_size - shrunk.height) // 2))
        shrunk = canvas
    resized = shrunk.resize((size, size), Image.Resampling.BILINEAR)
    tensor = np.multiply(np.asarray(resized), _mask_over_255(size), dtype=np.float32)
    return tensor, box, corner_lit_share(bright, box)


@lru_cache(maxsize=4)
def _mask_over_255(size: int) -> np.ndarray:
    """The circle mask / 255 for all three channels: a broadcast over a length-1 last axis costs
    five times the plain element-wise product."""
    scaled = np.repeat(circle_mask(size) / 255.0, 3, axis=2)
    scaled.setflags(write=False)
    return scaled


def to_model_input(image: Image.Image, size: int = MODEL_INPUT_SIZE) -> np.ndarray:
    """Kept for callers of the old name: the canonical input of a decoded image."""
    return canonical_input(image, size)


def preprocess_bytes(
    data: bytes,
    size: int = MODEL_INPUT_SIZE,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> tuple[np.ndarray, ImageInfo]:
    """Bytes in, (size, size, 3) float32 in [0, 1] out: the model's input contract."""
    image, info = decode_image(data, max_pixels=max_pixels, max_bytes=max_bytes)
    content = _content(image)
    box = content[0]
    decoded_side = max(box[2] - box[0], box[3] - box[1]) if box else WORKING_SIZE
    if decoded_side < WORKING_SIZE and image.width * image.height < info.width * info.height:
        # A photograph small in a large frame (a crop pasted on a camera-sized canvas): the reduced
        # decode left its content below the working resolution. Decode again with the content at
        # least at the working resolution, so that the frame does not blur the photograph.
        min_side = math.ceil(DECODE_SIDE * WORKING_SIZE / decoded_side)  # a box is at least 1 px
        image, info = decode_image(data, max_pixels=max_pixels, max_bytes=max_bytes, min_side=min_side)
        content = _content(image)
    tensor, (left, top, right, bottom), corner_lit = _canonical(image, size, WORKING_SIZE, content)
    scale_x, scale_y = info.width / image.width, info.height / image.height  # decoded at reduced size
    if (image.width > image.height) != (info.width > info.height):  # EXIF turned it
        scale_x, scale_y = info.height / image.width, info.width / image.height
    return tensor, replace(info, content_width=max(1, round((right - left) * scale_x)),
                           content_height=max(1, round((bottom - top) * scale_y)),
                           corner_lit=round(corner_lit, 4))
