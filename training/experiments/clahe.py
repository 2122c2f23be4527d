"""CLAHE on the model input, measured with the project's own scripts (card, experiment 36).

    PYTHONPATH=functions:.:<opencv> python training/experiments/clahe.py [--clip C] [--tiles N] \
        training.train --data <ACRIMA> --augmented-copies 6 --model-dir runs/clahe/model ...
    CSDI_DIR=... PYTHONPATH=functions:.:<opencv> python training/experiments/clahe.py \
        training/experiments/csdi_discs.py --model-dir runs/clahe/model

Contrast-limited adaptive histogram equalisation (OpenCV's, `opencv-python-headless`, an
experiment-only dependency) on the grey level of the canonical input, inside the circle mask,
wherever the project turns a photograph into a model input: `_canonical` in
screening/preprocessing.py is replaced for the run, so training, the invariance suite and the
scripts that score as serving does all see the same equalised image. Why: fundus photographs
from different cameras differ in exposure, contrast and illumination falloff; CLAHE is the
classic normalisation for them. The model converts to grey in its graph, so the equalised grey
level is handed over as three equal channels (the luma weights sum to 1).
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np

from screening import preprocessing
from training.experiments.run_target import run_target


def install(clip: float, tiles: int) -> None:
    clahe = cv2.createCLAHE(clipLimit=clip, tileGridSize=(tiles, tiles))
    canonical = preprocessing._canonical
    luma = np.array(preprocessing.LUMA_WEIGHTS, np.float32)

    def equalised(image, size, working_size, content=None):
        tensor, box, corner_lit = canonical(image, size, working_size, content)
        grey = np.clip(np.rint(tensor @ luma * 255.0), 0, 255).astype(np.uint8)
        inside = preprocessing._mask_over_255(size)[..., 0] > 0
        out = clahe.apply(grey).astype(np.float32) * (inside / 255.0)
        return np.repeat(out[..., None], 3, axis=-1).astype(np.float32), box, corner_lit

    preprocessing._canonical = equalised


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clip", type=float, default=2.0, help="CLAHE clip limit")
    parser.add_argument("--tiles", type=int, default=8, help="tiles per side")
    parser.add_argument("target", help="a module (training.train) or a script path")
    args, rest = parser.parse_known_args()
    install(args.clip, args.tiles)
    run_target(args.target, rest)


if __name__ == "__main__":
    main()
