"""Class-activation heatmaps: where in the photograph the glaucoma evidence lies."""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

from screening.preprocessing import LUMA_WEIGHTS

# A perceptual dark-to-bright ramp (black, purple, red, orange, pale yellow).
_ANCHORS = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], np.float32)


def normalised_grid(cam: np.ndarray) -> np.ndarray:
    """Min-max scale a CAM to [0, 1]; a flat map becomes all zeros."""
    cam = np.asarray(cam, np.float32)
    span = float(cam.max() - cam.min())
    return (cam - cam.min()) / span if span > 1e-9 else np.zeros_like(cam)


def grid_as_list(cam: np.ndarray, decimals: int = 2) -> list[list[float]]:
    return np.round(normalised_grid(cam), decimals).tolist()


def colourise(grid: np.ndarray) -> np.ndarray:
    positions = np.linspace(0.0, 1.0, len(_ANCHORS))
    channels = [np.interp(grid, positions, _ANCHORS[:, c]) for c in range(3)]
    return np.stack(channels, axis=-1).astype(np.uint8)


def overlay_png(model_input: np.ndarray, cam: np.ndarray, alpha: float = 0.45) -> bytes:
    """The model's input (grey) with the heatmap blended on top, as PNG bytes."""
    size = model_input.shape[0]
    heat = Image.fromarray((normalised_grid(cam) * 255).astype(np.uint8)).resize(
        (size, size), Image.Resampling.BILINEAR)
    coloured = colourise(np.asarray(heat, np.float32) / 255.0).astype(np.float32)
    grey = (model_input @ np.array(LUMA_WEIGHTS, np.float32))[..., None] * 255.0
    blended = (1 - alpha) * grey + alpha * coloured
    buffer = io.BytesIO()
    Image.fromarray(np.clip(blended, 0, 255).astype(np.uint8)).save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def overlay_png_base64(model_input: np.ndarray, cam: np.ndarray) -> str:
    return base64.b64encode(overlay_png(model_input, cam)).decode("ascii")
