"""Cheap image-quality flags reported with every result.

They do not block a prediction: a grader reads them next to the label. The
limits are deliberately loose; they catch gross problems (a black frame, a
washed-out photograph, a tiny thumbnail), not subtle ones.
"""

from __future__ import annotations

import numpy as np

from screening.preprocessing import LUMA_WEIGHTS, MODEL_INPUT_SIZE, ImageInfo

DARK_MEAN = 0.08
BRIGHT_MEAN = 0.85
LOW_CONTRAST_STD = 0.04
ASPECT_LIMIT = 1.25


def quality_flags(model_input: np.ndarray, info: ImageInfo) -> list[str]:
    """Names of the quality problems found; empty when none."""
    flags = []
    if min(info.width, info.height) < MODEL_INPUT_SIZE:
        flags.append("low_resolution")
    if max(info.width, info.height) / min(info.width, info.height) > ASPECT_LIMIT:
        flags.append("not_square_crop")
    luminance = model_input @ np.array(LUMA_WEIGHTS, np.float32)
    mean, std = float(luminance.mean()), float(luminance.std())
    if mean < DARK_MEAN:
        flags.append("too_dark")
    if mean > BRIGHT_MEAN:
        flags.append("overexposed")
    if std < LOW_CONTRAST_STD:
        flags.append("low_contrast")
    spread = float(np.abs(model_input - model_input.mean(axis=2, keepdims=True)).mean())
    if spread < 0.005:
        flags.append("no_colour")
    return flags
