"""The optic disc in a full-field fundus photograph: find it, crop around it (numpy + Pillow only).

A tiny learned locator (training/disc_locator.py, CSDI's expert disc boxes, patient-grouped
cross-validation in models/disc_locator/REPORT.md): on a copy whose long side is WORK_SIDE px, per
pixel, band-pass and local-level responses of R, G, B at scales tied to the expected disc size
(DISC_TO_FUNDUS of the fundus diameter), local vessel contrast, and the position relative to the
fundus centre; a logistic regression's linear score over them; the disc is at the score's maximum
inside the (rim-eroded) fundus. A maximum below the card's `min_score` means no disc was found.
Gaussian blurs are separable matrix products on the small copy: a few ms for the whole map.

The crop is a square centred on the disc whose side is the disc diameter / disc_to_crop, the
framing of ACRIMA's crops (the glaucoma model's training data); parts outside the photograph are
black, as in ACRIMA's own edge crops.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from screening.quality import erode, fundus_mask

WORK_SIDE = 128
RIM_EROSION = 0.05  # share of the fundus diameter kept away from the rim
# Share of the lit fundus's bounding box that is lit: a full field is a disc, cut at most at top and
# bottom (CSDI 0.53-0.85, the skimage retina 0.79); a disc crop fills its rectangle (ACRIMA >= 0.95),
# also when it is letter-boxed or framed in black. Above this: not a full-field photograph.
MAX_FULL_FIELD_FILL = 0.90
LOCATOR_FILE = "locator.json"
DEFAULT_LOCATOR_DIR = Path(__file__).resolve().parent.parent.parent / "models" / "disc_locator"


class NotFullField(ValueError):
    """The lit region fills a rectangle: a crop (perhaps framed in black), not a full-field photograph."""


@dataclass(frozen=True)
class DiscLocation:
    x: float  # centre, original pixels
    y: float
    diameter: float  # expected disc diameter, original pixels
    score: float  # the locator's score at the centre

    def crop_box(self, disc_to_crop: float) -> tuple[int, int, int, int]:
        """(left, top, right, bottom) of the square crop in original pixels (may leave the image)."""
        side = int(round(self.diameter / disc_to_crop))
        left, top = int(round(self.x - side / 2)), int(round(self.y - side / 2))
        return left, top, left + side, top + side


@dataclass(frozen=True)
class Locator:
    weights: np.ndarray  # one per feature
    bias: float
    min_score: float  # below: no disc found
    disc_to_fundus: float  # disc diameter / fundus diameter
    disc_to_crop: float  # disc diameter / crop side (ACRIMA's framing)

    @classmethod
    def load(cls, folder: Path = DEFAULT_LOCATOR_DIR) -> "Locator":
        card = json.loads((Path(folder) / LOCATOR_FILE).read_text())
        return cls(np.asarray(card["weights"], np.float32), float(card["bias"]), float(card["min_score"]),
                   float(card["disc_to_fundus"]), float(card["disc_to_crop"]))

    def locate(self, image: Image.Image) -> DiscLocation | None:
        """The disc's centre in original pixels, or None when none stands out (NotFullField: see features)."""
        found = features(image, self.disc_to_fundus)
        if found is None:
            return None
        stack, inner, scale, disc = found
        score = stack @ self.weights + self.bias
        score = np.where(inner, score, -np.inf)
        peak = int(np.argmax(score))
        y, x = divmod(peak, score.shape[1])
        best = float(score[y, x])
        if best < self.min_score:
            return None
        return DiscLocation(x=(x + 0.5) * scale, y=(y + 0.5) * scale, diameter=disc * scale, score=best)


@lru_cache(maxsize=1)
def default_locator() -> Locator:
    return Locator.load()


def working_copy(image: Image.Image, side: int = WORK_SIDE) -> tuple[np.ndarray, float]:
    """RGB float32 [0, 1] with the long side `side`, and the factor back to original pixels.

    Nearest-neighbour sampling to 4x the size, then a 4x4 box average: the same few thousand pixel
    reads whatever the camera's resolution (a 2592x1728 frame in well under a millisecond; PIL's
    reduce over every pixel took ~8 ms)."""
    scale = max(image.size) / side
    size = (max(1, round(image.width / scale)), max(1, round(image.height / scale)))
    small = image.resize((4 * size[0], 4 * size[1]), Image.Resampling.NEAREST).reduce(4)
    return np.asarray(small, np.float32) / 255.0, scale


def blur_matrix(n: int, sigma: float) -> np.ndarray:
    """(n, n) matrix of a 1-D Gaussian blur, each row renormalised where the kernel leaves the array."""
    offsets = np.arange(n, dtype=np.float32)
    weights = np.exp(-0.5 * ((offsets[:, None] - offsets[None, :]) / max(sigma, 1e-3)) ** 2)
    return weights / weights.sum(axis=1, keepdims=True)


def gaussian_blurs(planes: np.ndarray, sigmas: list[float]) -> list[np.ndarray]:
    """Separable Gaussian blurs of (..., H, W) planes as two small matrix products per sigma: on a
    128-px working copy that is well under a millisecond, far below a convolution's cost."""
    height, width = planes.shape[-2:]
    return [blur_matrix(height, s) @ planes @ blur_matrix(width, s).T for s in sigmas]


def features(image: Image.Image, disc_to_fundus: float):
    """(H, W, F) per-pixel features, the inner fundus mask, the scale to original pixels and the
    expected disc diameter in working pixels; None when there is too little lit fundus.
    Raises NotFullField when the lit region is no round fundus (MAX_FULL_FIELD_FILL)."""
    rgb, scale = working_copy(image)
    mask = fundus_mask(rgb)
    if not mask.any():
        return None
    cols, rows = np.flatnonzero(mask.any(axis=0)), np.flatnonzero(mask.any(axis=1))
    fundus = float(max(cols[-1] - cols[0], rows[-1] - rows[0]) + 1)
    if mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].mean() > MAX_FULL_FIELD_FILL:
        raise NotFullField("the lit region fills its bounding box")
    if mask.sum() < 0.05 * mask.size:
        return None
    disc = disc_to_fundus * fundus
    inner = erode(mask, max(1, int(RIM_EROSION * fundus)))
    if inner.sum() < 0.02 * mask.size:
        return None
    channels = np.moveaxis(rgb, -1, 0)  # (3, H, W)
    levels = np.array([np.median(c[mask]) for c in channels], np.float32)[:, None, None]
    channels = np.where(mask, channels, levels)
    b8, b4, b1, b2, b_fine = gaussian_blurs(channels, [disc / 8, disc / 4, disc, 2 * disc, 1.0])
    (vessels,) = gaussian_blurs(np.abs(channels - b_fine), [disc / 2])
    planes = []
    for c in range(3):
        planes += [b4[c] - b2[c], b8[c] - b1[c], b4[c] - levels[c], vessels[c]]
    planes = [(p - p[inner].mean()) / (p[inner].std() + 1e-6) for p in planes]
    yy, xx = np.mgrid[:rgb.shape[0], :rgb.shape[1]].astype(np.float32)
    rx = (xx - (cols[0] + cols[-1]) / 2) / fundus
    ry = (yy - (rows[0] + rows[-1]) / 2) / fundus
    planes += [np.abs(rx), rx ** 2, ry, ry ** 2]
    return np.stack(planes, axis=-1).astype(np.float32), inner, scale, disc


def crop(image: Image.Image, box: tuple[int, int, int, int]) -> Image.Image:
    """The box cut from the image; parts outside it are black (Pillow pads crops with zeros)."""
    return image.crop(box)
