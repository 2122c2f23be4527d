"""Re-framing at the true scale, under a head that never saw it (card, experiment 48).

    ACRIMA_DIR=... PYTHONPATH=functions:. python training/experiments/scale_oracle.py [MODEL_DIR]

The test split's centre crops of 80, 70 and 50 %, scored as they are and shrunk back by their
true 1/f onto black (scale_normalised.py's re-framing with a perfect scale estimate): whether a
model trained on ACRIMA's framing can take a re-framed input as it is.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from screening.config import BUNDLED_MODEL_DIR
from screening.preprocessing import MODEL_INPUT_SIZE, WORKING_SIZE, canonical_input, content_box
from training.acquisition import crop
from training.data import read_splits_csv
from training.evaluate import score
from training.experiments.beyond_suite import variant_line
from training.experiments.scale_normalised import reframed
from training.features import load_photos


def main() -> int:
    model = Path(sys.argv[1]) if len(sys.argv) > 1 else BUNDLED_MODEL_DIR
    test = read_splits_csv(Path(os.environ["ACRIMA_DIR"]))["test"]
    labels, photos = np.asarray(test.labels), load_photos(list(test.paths))
    clean, threshold = score(model, np.stack([canonical_input(p) for p in photos]))
    for f in (0.8, 0.7, 0.5):
        crops = [crop(p, f) for p in photos]
        for name, inputs in (
                ("as they are", [canonical_input(c) for c in crops]),
                ("re-framed at 1/f", [reframed(c, content_box(c), 1 / f, MODEL_INPUT_SIZE, WORKING_SIZE)
                                      for c in crops])):
            print(f"crop {f:.0%} {variant_line(name, labels, score(model, np.stack(inputs))[0], clean, threshold)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
