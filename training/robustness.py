"""Photometric shifts of a labelled set, to check that the model does not lean on colour.

ACRIMA's classes differ in colour in a way other hospitals' images do not; a
model that uses that cue collapses elsewhere. These variants of the test split
are the check we can run ourselves: the AUC must stay within 0.05.
"""

from __future__ import annotations

import numpy as np

GREY_WEIGHTS = np.array([0.299, 0.587, 0.114], np.float32)
# Per-channel gains and a gamma, roughly a warmer, darker camera than ACRIMA's.
COLOUR_SHIFT_GAINS = np.array([1.15, 0.85, 0.7], np.float32)
COLOUR_SHIFT_GAMMA = 1.3


def grey_level(images: np.ndarray) -> np.ndarray:
    grey = images @ GREY_WEIGHTS
    return np.repeat(grey[..., None], 3, axis=-1).astype(np.float32)


def colour_shift(images: np.ndarray) -> np.ndarray:
    return np.clip((images * COLOUR_SHIFT_GAINS) ** COLOUR_SHIFT_GAMMA, 0.0, 1.0).astype(np.float32)


VARIANTS = {"grey": grey_level, "colour_shift": colour_shift}
