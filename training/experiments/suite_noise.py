"""How much of a suite figure is the test split's sampling: a paired bootstrap over the test
photographs of row 52's head (the model served until row 71) against row 71's (served now).

    ACRIMA_DIR=/path/to/acrima PYTHONPATH=functions:. python training/experiments/suite_noise.py \
        [--rounds 2000] [--alpha 0.01]   (the reframing penalty's alpha; 0.01 is row 71)

Why: rows 71 and 72 compare heads by the suite's median p95 |dp| and blur's specificity on 105 test
photographs (46 normals: one normal is 0.022 of specificity), and several decisions rested on
differences of a few photographs. Each round resamples the test photographs with replacement within
each class, the heads and thresholds fixed (fitted on train, chosen on val, as head_suite.py fits
them), and recomputes each figure for both heads on the same resample. Printed: each head's figure
with its 95 % interval, and the paired difference's; a difference whose interval holds 0 is not one
this split can show. Only the test photographs' sampling is covered, not the training draw's.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from training.acquisition import VARIANTS  # noqa: E402
from training.experiments.head_suite import served_head, suite_setup  # noqa: E402
from training.experiments.reframing_penalty import reframing_views  # noqa: E402


def figures(labels: np.ndarray, clean: np.ndarray, varied: dict[str, np.ndarray], threshold: float) -> dict:
    """The suite's headline figures on one (re)sample of the test photographs."""
    normal = labels == 0
    p95 = {name: float(np.percentile(np.abs(p - clean), 95)) for name, p in varied.items()}
    return {"test AUC": roc_auc_score(labels, clean),
            "suite median p95 |dp|": float(np.median(list(p95.values()))),
            "crop_80 p95 |dp|": p95["crop_80"], "zoom_1.2 p95 |dp|": p95["zoom_1.2"],
            "blur specificity": float((varied["blur_1.5"][normal] < threshold).mean()),
            "jpeg_q30 specificity": float((varied["jpeg_q30"][normal] < threshold).mean())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--alpha", type=float, default=0.01)
    args = parser.parse_args()
    acrima, bank, mirror, labels, _, _, train, val, test, cached = suite_setup()
    variants = {name: views for name, views in cached.items() if name in VARIANTS}
    other = "row 71" if args.alpha == 0.01 else f"alpha {args.alpha:g}"
    heads = {"row 52": served_head(bank, mirror, labels, train, val),
             other: served_head(bank, mirror, labels, train, val, alpha=args.alpha,
                                   spread_bank=reframing_views(acrima, bank[0]))}
    scores = {}
    for name, (head, threshold) in heads.items():
        clean = head.probabilities_over_mirror(bank[0, test], mirror[0, test])
        varied = {v: head.probabilities_over_mirror(*views) for v, views in variants.items()}
        scores[name] = (clean, varied, threshold)
    y = labels[test]
    rng = np.random.default_rng(0)
    by_class = [np.flatnonzero(y == c) for c in (0, 1)]
    draws = {name: [] for name in heads}
    for _ in range(args.rounds):
        pick = np.concatenate([rng.choice(idx, len(idx)) for idx in by_class])
        for name, (clean, varied, threshold) in scores.items():
            resampled = {v: p[pick] for v, p in varied.items()}
            draws[name].append(figures(y[pick], clean[pick], resampled, threshold))
    print(f"{len(y)} test photographs ({len(by_class[0])} normal), "
          f"{args.rounds} paired resamples within class")
    for key in draws["row 52"][0]:
        line = []
        for name, (clean, varied, threshold) in scores.items():
            whole = figures(y, clean, varied, threshold)[key]
            low, high = np.percentile([d[key] for d in draws[name]], [2.5, 97.5])
            line.append(f"{name} {whole:.3f} [{low:.3f}, {high:.3f}]")
        diff = np.array([b[key] - a[key] for a, b in zip(draws["row 52"], draws[other])])
        low, high = np.percentile(diff, [2.5, 97.5])
        line.append(f"{other} - row 52 [{low:+.3f}, {high:+.3f}]")
        print(f"{key:24s} " + "; ".join(line), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
