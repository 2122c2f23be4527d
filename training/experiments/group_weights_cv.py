"""Weighting the head's training images against the size shortcut (training/crossval.py
size_balance_weights): each image weighs count(width bin, label)^-POWER within the fold's fitting
images, so rare pairs (small glaucoma, large normal photographs) count more. Grouped 5-fold CV of
the mirror-fitted head (row 18's recipe) on tta_cv.py's cached features and folds (run
`tta_cv.py 6` once first).

    PYTHONPATH=functions:. python training/experiments/group_weights_cv.py [POWER,...] [BIN_PX] [C]

POWER 0 is the unweighted head. The weights use the same variable the folds are grouped by, so
a gain here is weaker evidence than one from an unrelated change.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from training.crossval import cross_validate, size_balance_weights

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tta_cv import cache_path  # noqa: E402


def main() -> int:
    powers = [float(v) for v in (sys.argv[1] if len(sys.argv) > 1 else "0,0.5,1").split(",")]
    bin_px = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    c = float(sys.argv[3]) if len(sys.argv) > 3 else 0.1
    cached = np.load(cache_path())
    bank, labels, widths = cached["bank"], cached["labels"], cached["widths"]
    fit_bank = np.concatenate([bank, cached["mirror"]])
    for power in powers:
        def fit_weights(index: np.ndarray, power: float = power) -> np.ndarray:
            return size_balance_weights(widths[index], labels[index], power, bin_px)

        result = cross_validate(bank, labels, widths, c, seed=42, fit_bank=fit_bank, fit_weights=fit_weights)
        print(f"power {power:g}, {bin_px}-px bins, C {c:g}: "
              + ", ".join(f"{key} {value['mean']:.3f} +- {value['sd']:.3f}"
                          for key, value in result["summary"].items())
              + "; AUC per fold " + ", ".join(f"{f['roc_auc']:.3f}" for f in result["folds"]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
