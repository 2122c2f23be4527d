"""What the model sees: the image as given, or a crop around the optic disc of a full-field photograph.

A model card's `input_framing` says what its model was trained on:
- `disc_crop` (the default, glaucoma on ACRIMA): a disc-centred crop is screened as given. A
  full-field photograph (the quality gate's `not_square_crop` / `not_disc_crop`) is no longer
  refused: once it passes every other check, the disc locator (screening/disc.py) finds the optic
  disc and the square around it, at ACRIMA's framing, is screened instead; no disc found is the
  rejection `no_disc_found`.
- `full_field` (cataract on CSDI): the whole photograph is screened; framing checks do not apply.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from screening import disc, quality
from screening.preprocessing import DETAIL_DECODE_SIDE, ImageInfo, ImageRejected, decode_image, to_model_input

FRAMING_REJECTIONS = frozenset({"not_square_crop", "not_disc_crop"})
# a full field never fills the frame; blur is what a cataract looks like, the thing the model measures
FULL_FIELD_WAIVED = FRAMING_REJECTIONS | {"fundus_edge", "blurred"}
FULL_FIELD = "full_field"
NO_DISC_MESSAGE = ("No optic disc could be found in this full-field photograph; send a photograph in which "
                   "the optic disc is visible, or a square crop centred on it.")


@dataclass
class Framed:
    tensor: np.ndarray
    flags: list[str]
    fields: dict = field(default_factory=dict)  # what the record says about the framing


def frame(tensor: np.ndarray, info: ImageInfo, data: bytes, framing: str, size: int,
          max_pixels: int, max_bytes: int, locator: disc.Locator | None = None) -> Framed:
    """The tensor to screen (`tensor` is preprocess_bytes' of `data`); raises ImageRejected."""
    if framing == FULL_FIELD:
        return Framed(tensor, quality.gate(tensor, info, waived=FULL_FIELD_WAIVED))
    report = quality.assess(tensor, info)
    if report.rejection not in FRAMING_REJECTIONS:
        if report.rejection:
            raise ImageRejected(report.rejection, report.message)
        return Framed(tensor, report.flags, {"cropped": False})
    quality.gate(tensor, info, waived=FRAMING_REJECTIONS)  # every other check still applies
    image, _ = decode_image(data, max_pixels=max_pixels, max_bytes=max_bytes, min_side=DETAIL_DECODE_SIDE)
    locator = locator or disc.default_locator()
    try:
        found = locator.locate(image)
    except disc.NotFullField:  # a crop framed or stretched into a bigger frame: refused as before
        raise ImageRejected(report.rejection, report.message)
    if found is None:
        raise ImageRejected("no_disc_found", NO_DISC_MESSAGE)
    box, crop_tensor, crop_info = disc_crop_input(image, info, found, locator.disc_to_crop, size)
    flags = quality.gate(crop_tensor, crop_info, waived=FRAMING_REJECTIONS)
    # The image was decoded at reduced size (preprocessing); the answer speaks in the upload's pixels.
    scale = info.width / image.width
    return Framed(crop_tensor, flags, {"cropped": True, "crop_box": [int(round(v * scale)) for v in box],
                                       "disc": {"x": round(found.x * scale, 1), "y": round(found.y * scale, 1),
                                                "diameter": round(found.diameter * scale, 1),
                                                "score": round(found.score, 3)}})


def disc_crop_input(image: Image.Image, info: ImageInfo, found: disc.DiscLocation, disc_to_crop: float,
                    size: int) -> tuple[tuple[int, int, int, int], np.ndarray, ImageInfo]:
    """The disc crop of a full-field photograph as the model sees it: its box, input and info."""
    box = found.crop_box(disc_to_crop)
    crop = disc.crop(image, box)
    return box, to_model_input(crop, size), ImageInfo(format=info.format, mode=info.mode,
                                                      width=crop.width, height=crop.height)


def severity(probability: float, card_extras: dict) -> float | None:
    """The 0-10 severity estimate of a model whose card maps its logit to severity (cataract)."""
    mapping = card_extras.get("severity_from_logit")
    if not mapping:
        return None
    p = min(max(probability, 1e-7), 1 - 1e-7)
    value = mapping["slope"] * float(np.log(p / (1 - p))) + mapping["intercept"]
    low, high = card_extras.get("severity_range", (0.0, 10.0))
    return round(float(min(max(value, low), high)), 2)
