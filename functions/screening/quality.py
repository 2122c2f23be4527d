"""The image-quality gate: refuse what the model cannot read, flag what it may misread.

The model was trained on optic-disc-centred crops (ACRIMA): the disc in the middle,
the orange retina reaching every edge of a near-square frame. Shown anything else it
still answers, often confidently. So every image is measured before the model runs.
The model input is canonical (preprocessing.py): cropped to its non-black content box,
padded to square, masked to the inscribed circle. So the grey-level measures are taken
inside the circle on the content box's place (`photo_region`), and "is this a disc crop"
is judged from the content box itself (`ImageInfo.corner_lit`, `content_width/height`),
which the circle mask cannot hide. Luminance by the BT.601 weights, on the 224-px input:

| measure | what it is | rejected (reason) | flagged |
|---|---|---|---|
| `contrast` | luminance std inside the circle | < 0.004, or < 0.012 when neither too dark nor too bright: `blank_frame` | < 0.03: `low_contrast` |
| `bright_level` | 99th percentile of luminance | < 0.15: `too_dark` | fundus mean < 0.18: `too_dark` |
| `saturated` | share of pixels with two channels >= 0.98 (ACRIMA: at most 0.09) | > 0.40: `too_bright` | > 0.10 or fundus mean > 0.80: `overexposed` |
| `aspect` | content box's long side / short side (ACRIMA p99 1.11, max 1.30) | > 1.60: `not_square_crop` | > 1.15: `not_square_crop` |
| `corner_lit` | lit share of the content box's four corner squares (20 % of its shorter side) | < 0.25: `not_disc_crop` (a round full-field fundus on black) | < 0.75: `fundus_edge` |
| `edge_fundus` | lit share of the 3-px ring just inside the circle mask | | < 0.80: `fundus_edge` |
| `detail` | std of luminance minus its Gaussian blur (sigma 2 px) inside the fundus, 7 px off its rim | > 0.040: `not_fundus` (fine texture no fundus photo has at this scale; ACRIMA max 0.027) | |
| `redness` | median of (R - G) / (R + G + B) inside the fundus, colour images only | < 0.0: `not_fundus` | |
| `detail` | as above | < 0.0018: `blurred` | < 0.0030: `blurred` |
| sides | the original's shorter side | | < 224 px: `low_resolution` |
| `colour_spread` | mean distance of channels from their mean | | < 0.005: `no_colour` |

Preprocessing itself refuses an all-black frame (`blank_image`) and a strip beyond 8:1
(`extreme_aspect_ratio`).

Calibrated on the canonical input (`python -m screening.quality [--quiet] DIR...` prints each
measure and verdict). ACRIMA, 705 images: all pass (`corner_lit` min 0.65, median 1.0; `detail`
0.0027 to 0.027; `fundus_mean` min 0.17). CSDI, 187 full-field photographs: `corner_lit` 0.07 to
0.28 (p99 0.17): 186 refused as `not_disc_crop`, the one at 0.28 passes flagged `fundus_edge`. The fixtures in tests/fixtures/quality (skimage retina 0.15, two CSDI 0.14/0.16,
a coffee cup: `not_fundus`) are refused. The 12 samples (tests/unit/test_quality.py) pass, flags
allowed, when blurred by sigma 2 px at 224 (`detail` min 0.0021), JPEG q20/q30, gamma 1.35 and
1/1.35, padded to 4:3, cropped to the central 75 %, rotated +-15 deg in their frame (`corner_lit`
0.40 to 0.56), cut to 4:3, shrunk to 100 px, or blurred 2 px + gamma 1.35 + JPEG q25; sigma 6 px gives `detail` 0.0014 to 0.0019 (most refused, all flagged; sigma 8 px: all refused).
The refusal bound sits below the 6-px range on purpose: a refused photograph from another camera
is a lost screening, while a soft one still gets its label with the `blurred` flag, and ACRIMA's
own softness is close to a 2-px blur (`detail` min 0.0021 there). A disc crop rotated
and expanded onto black (`corner_lit` about 0.10) is indistinguishable by this cue from a round
full field and is refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from screening.preprocessing import LUMA_WEIGHTS, MODEL_INPUT_SIZE, ImageInfo, ImageRejected, circle_mask

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
ASPECT_REJECT = 1.60  # the content box's sides (padding is cropped away before the model)
ASPECT_FLAG = 1.15
RING_PX = 3  # the ring just inside the circle mask
EDGE_FUNDUS_FLAG = 0.80
CORNER_LIT_REJECT = 0.25
CORNER_LIT_FLAG = 0.75
DETAIL_SIGMA = 2.0
DETAIL_ERODE_PX = 7  # keeps the blur's window off the black outside the circle
NOT_FUNDUS_DETAIL = 0.040  # ACRIMA max 0.027, the coffee photograph 0.051
NOT_FUNDUS_REDNESS = 0.0
BLURRED_REJECT = 0.0018
BLURRED_FLAG = 0.0030
NO_COLOUR_SPREAD = 0.005

MESSAGES = {
    "blank_frame": "The image is blank or nearly uniform (all black, all white or one colour); "
                   "send a fundus photograph.",
    "too_dark": "The image is too dark to read the optic disc; retake it with more light.",
    "too_bright": "The image is overexposed (mostly white); retake it with less light.",
    "not_square_crop": "The image is {aspect:.2f} times wider than high; send a square crop centred on the "
                       "optic disc.",
    "not_disc_crop": "The retina does not reach the corners of the photograph (a full-field photograph "
                     "or a framed image); send a crop centred on the optic disc.",
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
    """Boolean (size, size): the pixels of the model input that hold the photograph.

    canonical_input crops to the content box, pads that to a square and masks to the
    inscribed circle: the photograph is the content box's place on the square (its
    aspect from `info`), inside the circle.
    """
    size = model_input.shape[0]
    width, height = ((info.content_width, info.content_height) if info.content_width > 0
                     else (info.width, info.height))
    side = max(width, height)
    inner_w, inner_h = width * size / side, height * size / side
    x0, y0 = (size - inner_w) / 2, (size - inner_h) / 2
    region = np.zeros((size, size), bool)
    region[math.ceil(y0):math.floor(y0 + inner_h), math.ceil(x0):math.floor(x0 + inner_w)] = True
    region &= circle_mask(size)[..., 0] >= 1.0  # fully inside: the soft rim would fake contrast
    return region if region.sum() >= 64 else circle_mask(size)[..., 0] >= 1.0


def gaussian_blur(grey: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur with edge replication, in float32 (no 8-bit rounding).

    Each pass adds the symmetric pairs of shifted copies: a third of the cost of a dot product
    over a strided window view, and within 2e-7 of it."""
    radius = int(3 * sigma)
    weights = np.exp(-0.5 * (np.arange(radius + 1) / sigma) ** 2)
    weights = (weights / (2 * weights.sum() - weights[0])).astype(np.float32)  # centre, then +-1, +-2, ...
    height, width = grey.shape
    padded = _edge_padded(np.asarray(grey, np.float32), radius)
    rows = padded[:, radius:radius + width] * weights[0]
    pair = np.empty_like(rows)  # one scratch array: the same sums without a temporary per term
    for k in range(1, radius + 1):
        np.add(padded[:, radius - k:radius - k + width], padded[:, radius + k:radius + k + width], out=pair)
        pair *= weights[k]
        rows += pair
    out = rows[radius:radius + height] * weights[0]
    pair = pair[:height]
    for k in range(1, radius + 1):
        np.add(rows[radius - k:radius - k + height], rows[radius + k:radius + k + height], out=pair)
        pair *= weights[k]
        out += pair
    return out


def _edge_padded(image: np.ndarray, radius: int) -> np.ndarray:
    """np.pad(image, radius, mode="edge"), the same values at a fifth of its cost."""
    height, width = image.shape
    padded = np.empty((height + 2 * radius, width + 2 * radius), image.dtype)
    padded[radius:radius + height, radius:radius + width] = image
    padded[radius:radius + height, :radius] = image[:, :1]
    padded[radius:radius + height, radius + width:] = image[:, -1:]
    padded[:radius] = padded[radius]
    padded[radius + height:] = padded[radius + height - 1]
    return padded


def erode(mask: np.ndarray, steps: int, outside: bool = False) -> np.ndarray:
    """Binary erosion by a (2 steps + 1)-px square (keeps away from the fundus rim).

    `outside` is what lies beyond the array: False erodes from the frame's edges too.
    """
    if steps <= 0:
        return mask.copy()
    size = 2 * steps + 1
    height, width = mask.shape
    padded = np.full((height + 2 * steps, width + 2 * steps), outside, bool)  # np.pad's result, cheaper
    padded[steps:steps + height, steps:steps + width] = mask
    return _window_all(_window_all(padded, size, axis=0), size, axis=1)


def _window_all(mask: np.ndarray, width: int, axis: int) -> np.ndarray:
    """True where all `width` consecutive values along `axis` are: ANDs of shifted copies whose
    window doubles each step (log2(width) passes instead of width)."""
    out, covered = mask, 1
    while covered < width:
        step = min(covered, width - covered)
        n = out.shape[axis] - step
        out = (out[:n] & out[step:step + n]) if axis == 0 else (out[:, :n] & out[:, step:step + n])
        covered += step
    return out


@lru_cache(maxsize=4)
def _inside_rim(size: int) -> np.ndarray:
    """The circle mask eroded by RING_PX: what is not in it (within the photo) is the rim ring."""
    inside = erode(circle_mask(size)[..., 0] >= 1.0, RING_PX, outside=False)
    inside.setflags(write=False)
    return inside


QUANTILE_SAMPLE_STRIDE = 16  # every 16th value guesses where the wanted order statistics lie
QUANTILE_SAMPLE_MARGIN = 64  # sample ranks either side of the guess: the bracket holds them almost always


def quantile(values: np.ndarray, q: float) -> float:
    """np.percentile(values, 100 q) to the bit (its 'linear' rule), without partitioning every value.

    Selecting an order statistic among all of an image's pixels cost 0.3-0.5 ms each; a strided
    sample brackets the two order statistics the rule needs, and only the values inside the
    bracket are partitioned. If the bracket misses either, the whole array is (same answer)."""
    values = np.asarray(values).ravel()
    position = (values.size - 1) * q
    lo = int(math.floor(position))
    a, b = _order_statistics(values, lo, min(lo + 1, values.size - 1))
    t = position - lo
    difference = b - a
    return float(b - difference * (1 - t) if t >= 0.5 else a + difference * t)


def median(values: np.ndarray) -> float:
    """np.median(values) to the bit (the mean of the middle two for an even count), as quantile()."""
    values = np.asarray(values).ravel()
    middle = values.size // 2
    pair = _order_statistics(values, middle - 1 + values.size % 2, middle)
    return float(np.mean(np.array(pair, values.dtype)))


def _order_statistics(values: np.ndarray, lo: int, hi: int) -> tuple:
    """The lo-th and hi-th smallest of values (lo <= hi), partitioning only a bracket around them."""
    sample = np.sort(values[::QUANTILE_SAMPLE_STRIDE])
    floor_value = sample[max(0, lo // QUANTILE_SAMPLE_STRIDE - QUANTILE_SAMPLE_MARGIN)]
    ceiling_value = sample[min(sample.size - 1, hi // QUANTILE_SAMPLE_STRIDE + QUANTILE_SAMPLE_MARGIN)]
    below = int(np.count_nonzero(values < floor_value))
    window = values[(values >= floor_value) & (values <= ceiling_value)]
    if not (below <= lo and hi < below + window.size):
        window, below = values, 0
    a, b = np.partition(window, [lo - below, hi - below])[[lo - below, hi - below]]
    return a, b


def fundus_mask(rgb: np.ndarray) -> np.ndarray:
    """Lit fundus pixels: any channel above FUNDUS_LEVEL (the surround and padding are black)."""
    lit = rgb > FUNDUS_LEVEL  # one pass over the floats, then ORs of bytes: half the cost of a max
    return lit[..., 0] | lit[..., 1] | lit[..., 2]


def _lit_planes(red: np.ndarray, green: np.ndarray, blue: np.ndarray) -> np.ndarray:
    """fundus_mask of an image already split into contiguous planes: the same test, plane by plane."""
    return (red > FUNDUS_LEVEL) | (green > FUNDUS_LEVEL) | (blue > FUNDUS_LEVEL)


def measure(model_input: np.ndarray, info: ImageInfo) -> dict[str, float]:
    rgb = np.asarray(model_input, np.float32)
    red, green, blue = np.ascontiguousarray(np.moveaxis(rgb, 2, 0))  # planes: fast, whole-array maths
    region = photo_region(rgb, info)
    grey = rgb @ np.array(LUMA_WEIGHTS, np.float32)
    mask = _lit_planes(red, green, blue) & region
    ring = region & ~_inside_rim(rgb.shape[0])
    inner = erode(mask, DETAIL_ERODE_PX)
    detail = float((grey - gaussian_blur(grey, DETAIL_SIGMA))[inner].std()) if inner.sum() > 50 else 0.0
    fundus_red, fundus_green, fundus_blue = red[mask], green[mask], blue[mask]
    redness = (fundus_red - fundus_green) / (fundus_red + fundus_green + fundus_blue + 1e-6)
    clipped_r, clipped_g, clipped_b = red >= SATURATED_LEVEL, green >= SATURATED_LEVEL, blue >= SATURATED_LEVEL
    two_clipped = (clipped_r & clipped_g) | (clipped_r & clipped_b) | (clipped_g & clipped_b)
    channel_mean = (red + green + blue) / 3
    spread = np.abs(red - channel_mean) + np.abs(green - channel_mean) + np.abs(blue - channel_mean)
    in_region = max(1, int(region.sum()))
    grey_region = grey[region]
    width, height = ((info.content_width, info.content_height) if info.content_width > 0
                     else (info.width, info.height))
    return {
        "contrast": float(grey_region.std()),
        "bright_level": quantile(grey_region, 0.99),
        "fundus_mean": float(grey[mask].mean()) if mask.any() else 0.0,
        "saturated": float(np.count_nonzero(two_clipped & region) / in_region),
        "aspect": max(width, height) / max(1, min(width, height)),
        "fundus_share": float(mask.sum() / in_region),
        "edge_fundus": float(mask[ring].mean()) if ring.any() else 0.0,
        "corner_lit": float(info.corner_lit) if info.corner_lit >= 0 else 1.0,
        "detail": detail,
        "redness": median(redness) if redness.size else 0.0,
        "colour_spread": float(spread[region].sum(dtype=np.float64) / (3 * in_region)),
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
        ("not_disc_crop", m["corner_lit"] < CORNER_LIT_REJECT),
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
        ("fundus_edge", m["edge_fundus"] < EDGE_FUNDUS_FLAG or m["corner_lit"] < CORNER_LIT_FLAG),
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
