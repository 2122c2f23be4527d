"""The image-quality gate: refuse what the model cannot read, flag what it may misread.

The model was trained on optic-disc-centred crops (ACRIMA): the disc in the middle,
the orange retina reaching every edge of a near-square frame. Shown anything else it
still answers, often confidently (a normal crop letter-boxed into a 4000x3000 frame
scored 0.99). So every image is measured before the model runs, on the region of
the model input that holds the photograph (the padding added to square it is left
out). Measures, all on the 224-px model input, luminance by the BT.601 weights:

| measure | what it is | rejected (reason) | flagged |
|---|---|---|---|
| `contrast` | luminance standard deviation | < 0.004, or < 0.012 when neither too dark nor too bright: `blank_frame` | < 0.03: `low_contrast` |
| `bright_level` | 99th percentile of luminance | < 0.15: `too_dark` | fundus mean < 0.18: `too_dark` |
| `saturated` | share of pixels with two channels >= 0.98 (ACRIMA: at most 0.07) | > 0.40: `too_bright` | > 0.10 or fundus mean > 0.80: `overexposed` |
| `aspect` | long side / short side | > 1.20: `not_square_crop` | > 1.10: `not_square_crop` |
| `edge_fundus` | share of the 3-px frame ring that is lit fundus (max channel > 0.10) | < 0.50: `not_disc_crop` (a full-field photograph, a framed or letter-boxed image) | < 0.80: `fundus_edge` |
| `detail` | std of luminance minus its Gaussian blur (sigma 2 px) inside the fundus | > 0.035: `not_fundus` (fine texture no fundus photo has at this scale) | |
| `redness` | median of (R - G) / (R + G + B) inside the fundus, colour images only | < 0.0: `not_fundus` | |
| `detail` | as above | < 0.0022: `blurred` | < 0.0032: `blurred` |
| sides | the original's shorter side | | < 224 px: `low_resolution` |
| `colour_spread` | mean distance of channels from their mean | | < 0.005: `no_colour` |

Thresholds were set on the 705 ACRIMA images and 187 full-field CSDI photographs
(`python -m screening.quality DIR...` prints each measure and verdict): 704 ACRIMA images
pass (the one with a 1.30 aspect is refused); all 187 CSDI photographs, the skimage
retina (full field) and the non-fundus photographs tried are refused. ACRIMA is itself soft
(`detail` 0.0025 to 0.024); of the 12 samples blurred by a Gaussian of 2 % of their width,
10 are refused as `blurred` and 2 flagged (JPEG/8-bit noise alone gives about 0.0015).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from screening.preprocessing import LUMA_WEIGHTS, MODEL_INPUT_SIZE, ImageInfo, ImageRejected

FUNDUS_LEVEL = 0.10  # max channel above this: lit fundus, not the camera's black surround
UNIFORM_CONTRAST = 0.004  # one level throughout (black, white, grey): blank before dark or bright
BLANK_CONTRAST = 0.012  # nearly uniform but lit: blank after the dark and bright checks
LOW_CONTRAST = 0.03
DARK_BRIGHT_LEVEL = 0.15
DARK_FUNDUS_MEAN = 0.18
SATURATED_LEVEL = 0.98  # two channels clipped: the retina washed out (red alone clips often)
TOO_BRIGHT_SATURATED = 0.40
OVEREXPOSED_SATURATED = 0.10
OVEREXPOSED_FUNDUS_MEAN = 0.80
ASPECT_REJECT = 1.20
ASPECT_FLAG = 1.10
EDGE_RING_PX = 3
EDGE_FUNDUS_REJECT = 0.50
EDGE_FUNDUS_FLAG = 0.80
DETAIL_SIGMA = 2.0
NOT_FUNDUS_DETAIL = 0.035
NOT_FUNDUS_REDNESS = 0.0
BLURRED_REJECT = 0.0022
BLURRED_FLAG = 0.0032
NO_COLOUR_SPREAD = 0.005

MESSAGES = {
    "blank_frame": "The image is blank or nearly uniform (all black, all white or one colour); "
                   "send a fundus photograph.",
    "too_dark": "The image is too dark to read the optic disc; retake it with more light.",
    "too_bright": "The image is overexposed (mostly white); retake it with less light.",
    "not_square_crop": "The image is {aspect:.2f} times wider than high; send a square crop centred on the "
                       "optic disc.",
    "not_disc_crop": "The retina does not fill the frame (a full-field photograph or a framed image); "
                     "send a square crop centred on the optic disc.",
    "not_fundus": "This does not look like a colour fundus photograph of the optic disc.",
    "blurred": "The image is too blurred to read the optic disc; retake it in focus.",
}


@dataclass
class QualityReport:
    """The verdict on one image: a rejection reason or none, flags, and the measures behind them."""

    measures: dict[str, float]
    flags: list[str] = field(default_factory=list)
    rejection: str | None = None

    @property
    def message(self) -> str:
        return MESSAGES[self.rejection].format(**self.measures) if self.rejection else ""


def photo_region(model_input: np.ndarray, info: ImageInfo) -> np.ndarray:
    """The part of the (square, padded) model input that holds the photograph itself.

    to_model_input centres the image on a black square; info gives the original sides
    (before any EXIF rotation, so the orientation whose outside is black is chosen).
    """
    size = model_input.shape[0]
    boxes = []
    for width, height in ((info.width, info.height), (info.height, info.width)):
        side = max(width, height)
        x0 = (side - width) // 2 * size / side
        y0 = (side - height) // 2 * size / side
        box = (math.ceil(y0), math.floor(y0 + height * size / side),
               math.ceil(x0), math.floor(x0 + width * size / side))
        boxes.append(box)
    if boxes[0] != boxes[1]:  # choose the orientation whose outside is darker (it is the padding)
        def outside_level(box: tuple[int, int, int, int]) -> float:
            top, bottom, left, right = box
            outside = model_input.copy()
            outside[max(0, top - 2):bottom + 2, max(0, left - 2):right + 2] = 0
            return float(outside.mean())
        boxes.sort(key=outside_level)
    top, bottom, left, right = boxes[0]
    region = model_input[top:bottom, left:right]
    return region if min(region.shape[:2]) >= 8 else model_input


def gaussian_blur(grey: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur with edge replication, in float (no 8-bit rounding)."""
    radius = int(3 * sigma)
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    kernel /= kernel.sum()
    padded = np.pad(grey, radius, mode="edge")
    rows = sliding_window_view(padded, kernel.size, axis=1) @ kernel
    return sliding_window_view(rows, kernel.size, axis=0) @ kernel


def erode(mask: np.ndarray, steps: int, outside: bool = False) -> np.ndarray:
    """Binary erosion by a (2 steps + 1)-px square (keeps away from the fundus rim).

    `outside` is what lies beyond the array: False erodes from the frame's edges too.
    """
    if steps <= 0:
        return mask.copy()
    # A pixel survives when its window holds no False pixel: window sums of an integral image.
    holes = np.pad(~mask, steps, constant_values=not outside).astype(np.int32)
    integral = np.pad(holes.cumsum(axis=0).cumsum(axis=1), ((1, 0), (1, 0)))
    size = 2 * steps + 1
    height, width = mask.shape
    window = (integral[size:size + height, size:size + width] - integral[:height, size:size + width]
              - integral[size:size + height, :width] + integral[:height, :width])
    return window == 0


def fundus_mask(rgb: np.ndarray) -> np.ndarray:
    """Lit fundus pixels: any channel above FUNDUS_LEVEL (the surround and padding are black)."""
    brightest = np.maximum(np.maximum(rgb[..., 0], rgb[..., 1]), rgb[..., 2])  # faster than max(axis=2)
    return brightest > FUNDUS_LEVEL


def measure(model_input: np.ndarray, info: ImageInfo) -> dict[str, float]:
    rgb = photo_region(np.asarray(model_input, np.float32), info)
    grey = rgb @ np.array(LUMA_WEIGHTS, np.float32)
    mask = fundus_mask(rgb)
    ring = np.concatenate([mask[:EDGE_RING_PX].ravel(), mask[-EDGE_RING_PX:].ravel(),
                           mask[:, :EDGE_RING_PX].ravel(), mask[:, -EDGE_RING_PX:].ravel()])
    inner = erode(mask, 4)
    detail = float((grey - gaussian_blur(grey, DETAIL_SIGMA))[inner].std()) if inner.sum() > 50 else 0.0
    red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    redness = ((red - green) / (red + green + blue + 1e-6))[mask]
    clipped_channels = sum((rgb[..., c] >= SATURATED_LEVEL).astype(np.uint8) for c in range(3))
    return {
        "contrast": float(grey.std()),
        "bright_level": float(np.percentile(grey, 99)),
        "fundus_mean": float(grey[mask].mean()) if mask.any() else 0.0,
        "saturated": float((clipped_channels >= 2).mean()),
        "aspect": max(info.width, info.height) / max(1, min(info.width, info.height)),
        "fundus_share": float(mask.mean()),
        "edge_fundus": float(ring.mean()),
        "detail": detail,
        "redness": float(np.median(redness)) if redness.size else 0.0,
        "colour_spread": float(np.abs(rgb - rgb.mean(axis=2, keepdims=True)).mean()),
        "short_side": float(min(info.width, info.height)),
    }


def assess(model_input: np.ndarray, info: ImageInfo, waived: frozenset[str] = frozenset()) -> QualityReport:
    """Measure an image and decide: the first rejection that applies, and every flag.

    `waived`: checks that do not apply to this model's input (framing, for a full-field model)."""
    m = measure(model_input, info)
    report = QualityReport(measures={k: round(v, 4) for k, v in m.items()})
    coloured = m["colour_spread"] >= NO_COLOUR_SPREAD
    rejections = [
        ("blank_frame", m["contrast"] < UNIFORM_CONTRAST),
        ("too_dark", m["bright_level"] < DARK_BRIGHT_LEVEL),
        ("too_bright", m["saturated"] > TOO_BRIGHT_SATURATED),
        ("blank_frame", m["contrast"] < BLANK_CONTRAST),
        ("not_square_crop", m["aspect"] > ASPECT_REJECT),
        ("not_disc_crop", m["edge_fundus"] < EDGE_FUNDUS_REJECT),
        ("not_fundus", m["detail"] > NOT_FUNDUS_DETAIL or (coloured and m["redness"] < NOT_FUNDUS_REDNESS)),
        ("blurred", m["detail"] < BLURRED_REJECT),
    ]
    report.rejection = next((reason for reason, failed in rejections if failed and reason not in waived), None)
    flags = [
        ("low_resolution", m["short_side"] < MODEL_INPUT_SIZE),
        ("not_square_crop", m["aspect"] > ASPECT_FLAG),
        ("too_dark", m["fundus_mean"] < DARK_FUNDUS_MEAN),
        ("overexposed", m["saturated"] > OVEREXPOSED_SATURATED or m["fundus_mean"] > OVEREXPOSED_FUNDUS_MEAN),
        ("low_contrast", m["contrast"] < LOW_CONTRAST),
        ("fundus_edge", m["edge_fundus"] < EDGE_FUNDUS_FLAG),
        ("blurred", m["detail"] < BLURRED_FLAG),
        ("no_colour", not coloured),
    ]
    report.flags = [name for name, hit in flags if hit and name != report.rejection and name not in waived]
    return report


def gate(model_input: np.ndarray, info: ImageInfo, waived: frozenset[str] = frozenset()) -> list[str]:
    """The flags of a usable image; raises ImageRejected (reason, message) for an unusable one."""
    report = assess(model_input, info, waived)
    if report.rejection:
        raise ImageRejected(report.rejection, report.message)
    return report.flags


def quality_flags(model_input: np.ndarray, info: ImageInfo) -> list[str]:
    """Names of the quality problems found; empty when none (no rejection)."""
    return assess(model_input, info).flags


def main(argv: list[str] | None = None) -> int:
    """Print each image's measures and verdict, then the count of verdicts: the thresholds' evidence."""
    import argparse
    from collections import Counter
    from pathlib import Path

    from screening.preprocessing import preprocess_bytes

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("paths", nargs="+", type=Path, help="image files or folders (searched recursively)")
    parser.add_argument("--quiet", action="store_true", help="only the totals")
    args = parser.parse_args(argv)
    files = sorted(f for p in args.paths for f in ([p] if p.is_file() else p.rglob("*"))
                   if f.suffix.lower() in (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp"))
    verdicts: Counter[str] = Counter()
    for path in files:
        try:
            report = assess(*preprocess_bytes(path.read_bytes()))
            verdict = report.rejection or "ok"
        except ImageRejected as exc:
            report, verdict = None, exc.reason
        verdicts[verdict] += 1
        if not args.quiet:
            print(f"{path}: {verdict} {report.flags if report else ''} {report.measures if report else ''}")
    print(f"{len(files)} images: " + ", ".join(f"{k} {v}" for k, v in verdicts.most_common()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
