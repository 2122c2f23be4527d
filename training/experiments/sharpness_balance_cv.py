"""Every fitted view weighted so that sharpness no longer tells the classes apart in the head's
training rows, in the grouped 5-fold CV.

    ACRIMA_DIR=/path/to/acrima PYTHONPATH=functions:. python training/experiments/sharpness_balance_cv.py \
        [--bins 10] [--powers 0.5,1] [--c 0.1]

Why: ACRIMA's normal photographs are the sharper ones (the model input's sharpness scores the label
at AUC 0.30), so even with half the re-acquisitions blurred, a sharp view is more often normal
among the head's rows and a blurred normal reads as glaucoma (blur sigma 1.5: specificity 0.630,
p95 |dp| 0.84). Row 60 erased the sharpness direction and changed nothing; here the rows are
reweighted instead, as rows 20-21 did for native width: each view (a photograph, a re-acquisition
or a mirror image) gets count(sharpness bin)/count(sharpness bin, class) ** power within the fold's
fitting rows, so blurred normals and sharp glaucoma count more. Per-view sharpness and the bins as
erase_sharpness_cv.py (runs/view_sharpness_k6.npy); folds, views and recipe as row 52.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from training.crossval import cross_validate, mirror_view_scores, print_result  # noqa: E402
from training.experiments.erase_sharpness_cv import view_sharpness  # noqa: E402
from training.experiments.tta_cv import SEED, served_banks  # noqa: E402


def balance_weights(bins: np.ndarray, labels: np.ndarray, power: float) -> np.ndarray:
    """(count(bin) / count(bin, label)) ** power per row, mean 1: the label-conditional sharpness
    distribution moved towards the pooled one."""
    pairs = np.stack([bins, labels], axis=1)
    _, pair_index, pair_counts = np.unique(pairs, axis=0, return_inverse=True, return_counts=True)
    _, bin_index, bin_counts = np.unique(bins, return_inverse=True, return_counts=True)
    weights = (bin_counts[bin_index.ravel()] / pair_counts[pair_index.ravel()]) ** power
    return weights / weights.mean()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bins", type=int, default=10)
    parser.add_argument("--powers", default="0.5,1")
    parser.add_argument("--c", type=float, default=0.1)
    args = parser.parse_args()
    bank, mirror, labels, widths = served_banks()
    sharp = np.log(view_sharpness(Path(os.environ["ACRIMA_DIR"])))
    edges = np.quantile(sharp, np.linspace(0, 1, args.bins + 1)[1:-1])
    bins = np.searchsorted(edges, np.concatenate([sharp, sharp]))  # (2 * views, N): a mirror is as sharp
    fit_bank = np.concatenate([bank, mirror])
    over_mirror = mirror_view_scores(bank, mirror)
    for power in [0.0] + [float(p) for p in args.powers.split(",")]:
        def fit_weights(index: np.ndarray, power: float = power) -> np.ndarray:
            rows = bins[:, index].reshape(-1)  # fit_bank's row order: view by view
            return balance_weights(rows, np.tile(labels[index], len(bins)), power)

        result = cross_validate(bank, labels, widths, args.c, seed=SEED, fit_bank=fit_bank,
                                view_scores=over_mirror, fit_weights=fit_weights if power else None)
        print_result(f"power {power:g}", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
