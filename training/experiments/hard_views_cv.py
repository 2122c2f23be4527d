"""The head refitted with each photograph's hardest views counting more (a soft worst case over a
photograph's re-acquisitions), in the grouped 5-fold CV and on the invariance suite.

    ACRIMA_DIR=/path/to/acrima PYTHONPATH=functions:. python training/experiments/hard_views_cv.py \
        [--temperatures 1,0.3] [--c 0.1]

Why: the suite's failures are a photograph's worst re-acquisitions (blur turns sharp normals into
glaucoma: specificity 0.630), while the served head minimises the average loss over the views, where
a photograph's easy views outvote its hard one. Distributionally robust fitting over views instead:
fit the served head, give each fitted view the weight softmax(loss / T) over its photograph's 14
views (times 14, so a photograph keeps its total weight), refit. Smaller T is closer to the worst
view alone. Same folds, views and recipe as row 52; the suite by head_suite.py's refit (card row 66).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from training import data as data_mod  # noqa: E402
from training.crossval import cross_validate, mirror_view_scores, summary_line  # noqa: E402
from training.experiments.head_suite import (served_head, split_indices, suite_summary,  # noqa: E402
                                             variant_features)
from training.experiments.tta_cv import SEED, served_banks  # noqa: E402
from training.head import fit_head  # noqa: E402


def hard_view_weights(fit_bank: np.ndarray, labels: np.ndarray, c: float, temperature: float) -> np.ndarray:
    """(views * N,) weights in fit_bank's row order: softmax of each view's loss under the plain head
    over its photograph's views, times the number of views."""
    views, n, d = fit_bank.shape
    y = np.tile(labels, views)
    head = fit_head(fit_bank.reshape(-1, d), y, c)
    logit = head.logits(fit_bank.reshape(-1, d))
    loss = np.where(y == 1, np.logaddexp(0, -logit), np.logaddexp(0, logit)).reshape(views, n)
    scaled = np.exp((loss - loss.max(axis=0, keepdims=True)) / temperature)
    return (views * scaled / scaled.sum(axis=0, keepdims=True)).reshape(-1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--temperatures", default="1,0.3")
    parser.add_argument("--c", type=float, default=0.1)
    args = parser.parse_args()
    bank, mirror, labels, widths = served_banks()
    labels = labels.astype(int)
    fit_bank = np.concatenate([bank, mirror])
    splits = data_mod.read_splits_csv(Path(os.environ["ACRIMA_DIR"]))
    train, val, test = split_indices(splits, labels)
    variants = variant_features(list(splits["test"].paths))
    for temperature in [None] + [float(t) for t in args.temperatures.split(",")]:
        name = "served" if temperature is None else f"hard views, T {temperature:g}"

        def fit_weights(index: np.ndarray, temperature=temperature) -> np.ndarray:
            return hard_view_weights(fit_bank[:, index], labels[index], args.c, temperature)

        result = cross_validate(bank, labels, widths, args.c, seed=SEED, fit_bank=fit_bank,
                                view_scores=mirror_view_scores(bank, mirror),
                                fit_weights=None if temperature is None else fit_weights)
        weights = None if temperature is None else fit_weights(train)
        head, threshold = served_head(bank, mirror, labels, train, val, weights)
        suite = suite_summary(head, threshold, (bank[0, test], mirror[0, test]), labels[test], variants)
        print(f"{name}: grouped CV {summary_line(result)}", flush=True)
        print(f"{name}: {suite}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
