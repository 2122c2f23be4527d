"""ACRIMA's framing: the optic disc's diameter as a share of the crop side.

    python -m training.disc_framing --acrima /path/to/acrima --csdi /path/to/csdi

ACRIMA has no disc outlines, so the disc is measured the same way on both data sets: the bright
blob around the brightest smoothed point near the centre, thresholded half-way between that peak
and the image's median luminance, its equivalent diameter. On CSDI the same measure is taken in a
window around each expert box and compared with the box's diameter; that ratio calibrates the
ACRIMA measure to "expert box" diameters, the unit the locator's disc size is in.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.metrics import roc_auc_score

from screening.disc import gaussian_blurs
from screening.preprocessing import LUMA_WEIGHTS
from training.cataract import read_csdi
from training.disc_locator import expert_disc

SIDE = 128


def blob_diameter(image: Image.Image) -> float:
    """Equivalent diameter (share of the side) of the bright blob at the smoothed maximum near the centre."""
    small = image.convert("RGB").resize((SIDE, SIDE), Image.Resampling.BILINEAR)
    grey = np.asarray(small, np.float32) @ np.asarray(LUMA_WEIGHTS, np.float32) / 255
    (smooth,) = gaussian_blurs(grey, [2.0])
    c = SIDE // 4
    window = smooth[c:-c, c:-c]
    y, x = np.unravel_index(np.argmax(window), window.shape)
    y, x = y + c, x + c
    level = (smooth[y, x] + np.median(smooth)) / 2
    blob = smooth >= level
    # the connected region containing the peak (flood fill by repeated dilation inside the blob)
    region = np.zeros_like(blob)
    region[y, x] = True
    for _ in range(SIDE):
        grown = region.copy()
        grown[1:] |= region[:-1]; grown[:-1] |= region[1:]; grown[:, 1:] |= region[:, :-1]; grown[:, :-1] |= region[:, 1:]
        grown &= blob
        if (grown == region).all():
            break
        region = grown
    return float(2 * np.sqrt(region.sum() / np.pi) / SIDE)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--acrima", type=Path, required=True)
    parser.add_argument("--csdi", type=Path, required=True)
    args = parser.parse_args(argv)
    rows = list(csv.DictReader((args.acrima / "splits.csv").open()))
    acrima = [blob_diameter(Image.open(args.acrima / r["path"])) for r in rows]
    glaucoma = np.array([r["label"] in ("1", "glaucoma") for r in rows])
    calibration = []
    for r in read_csdi(args.csdi):
        if r["optic_disc_visible"] != "yes":
            continue
        cx, cy, d = expert_disc(r)
        side = d / 0.4  # a window framed roughly like a disc crop
        image = Image.open(args.csdi / r["file"]).crop((int(cx - side / 2), int(cy - side / 2),
                                                        int(cx + side / 2), int(cy + side / 2)))
        calibration.append(blob_diameter(image) * side / d)  # measured / expert diameter
    factor = float(np.median(calibration))
    result = {"acrima_blob_to_side_median": float(np.median(acrima)),
              "acrima_blob_to_side_iqr": [float(v) for v in np.percentile(acrima, [25, 75])],
              # is the framing scale a label shortcut? (the native width is: AUC 0.87)
              "acrima_blob_to_side_median_by_label": {
                  "normal": float(np.median(np.array(acrima)[~glaucoma])),
                  "glaucoma": float(np.median(np.array(acrima)[glaucoma]))},
              "acrima_blob_to_side_auc_for_glaucoma": float(roc_auc_score(glaucoma, acrima)),
              "csdi_blob_to_expert_box_median": factor,
              "disc_to_crop": float(np.median(acrima) / factor), "n_acrima": len(acrima),
              "n_csdi": len(calibration)}
    json.dump(result, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
