"""The threshold's rule: the most specific threshold that keeps sensitivity >= 0.90 (card, experiment 49).

    PYTHONPATH=functions:. python training/experiments/threshold_rule.py \
        training.train --data <ACRIMA> --augmented-copies 6 --model-dir runs/spec_max/model ...

training.metrics.choose_threshold takes the Youden-optimal threshold among those keeping
sensitivity >= 0.90 on val and its re-acquired copies, which may sit lower than the constraint
needs when sensitivity is cheap there. Here it takes the highest threshold that still keeps it
(the least false positives the constraint allows), everywhere the job chooses one: the served
threshold and each grouped cross-validation fold's.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_curve

from training import crossval, metrics
from training.experiments.run_target import run_target


def most_specific_threshold(labels: np.ndarray, scores: np.ndarray, min_sensitivity: float = 0.9) -> float:
    fpr, tpr, thresholds = roc_curve(labels, scores)
    thresholds = np.clip(thresholds, 0.0, 1.0)
    best = int(np.argmax(tpr >= min_sensitivity))  # thresholds fall, so the first is the highest
    lower = thresholds[best + 1] if best + 1 < len(thresholds) else 0.0
    return float((thresholds[best] + lower) / 2.0)


def main() -> None:
    import sys

    metrics.choose_threshold = crossval.choose_threshold = most_specific_threshold
    print("threshold rule: the highest threshold keeping sensitivity >= the floor", flush=True)
    target, *rest = sys.argv[1:]
    run_target(target, rest)


if __name__ == "__main__":
    main()
