"""Shifted copies of a labelled set: what other cameras and hospitals do to a photograph.

ACRIMA's classes differ in colour (and in image size, hence sharpness) in ways
other hospitals' images do not; a model that uses those cues collapses
elsewhere. These variants of the test split are the checks we can run
ourselves: on grey and colour_shift the AUC must stay within 0.05; blur,
jpeg_q30 and wider_crop are reported (models/MODEL_CARD.md).
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFilter

from screening.preprocessing import LUMA_WEIGHTS

# Per-channel gains and a gamma, roughly a warmer, darker camera than ACRIMA's.
COLOUR_SHIFT_GAINS = np.array([1.15, 0.85, 0.7], np.float32)
COLOUR_SHIFT_GAMMA = 1.3


def grey_level(images: np.ndarray) -> np.ndarray:
    grey = images @ np.array(LUMA_WEIGHTS, np.float32)
    return np.repeat(grey[..., None], 3, axis=-1).astype(np.float32)


def colour_shift(images: np.ndarray) -> np.ndarray:
    return np.clip((images * COLOUR_SHIFT_GAINS) ** COLOUR_SHIFT_GAMMA, 0.0, 1.0).astype(np.float32)


def blur(images: np.ndarray) -> np.ndarray:
    """A softer camera or a slightly defocused shot: Gaussian blur, sigma 1.5 px at 224 px."""
    return np.stack([np.asarray(Image.fromarray(_to_uint8(i)).filter(ImageFilter.GaussianBlur(1.5)),
                                np.float32) / 255.0 for i in images])


def jpeg_q30(images: np.ndarray) -> np.ndarray:
    """Heavy JPEG recompression, as from a PACS export or a messaging app."""
    out = []
    for image in images:
        buffer = io.BytesIO()
        Image.fromarray(_to_uint8(image)).save(buffer, "JPEG", quality=30)
        out.append(np.asarray(Image.open(buffer).convert("RGB"), np.float32) / 255.0)
    return np.stack(out)


def wider_crop(images: np.ndarray) -> np.ndarray:
    """A looser crop around the disc: the image shrunk to 80 % on a black border."""
    size = images.shape[1]
    inner = int(round(size * 0.8))
    offset = (size - inner) // 2
    out = np.zeros_like(images)
    for k, image in enumerate(images):
        small = np.asarray(Image.fromarray(_to_uint8(image)).resize((inner, inner), Image.Resampling.BILINEAR),
                           np.float32) / 255.0
        out[k, offset:offset + inner, offset:offset + inner] = small
    return out


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)


# grey and colour_shift are the checks with targets (AUC within 0.05); the rest are reported.
VARIANTS = {"grey": grey_level, "colour_shift": colour_shift, "blur": blur, "jpeg_q30": jpeg_q30,
            "wider_crop": wider_crop}
