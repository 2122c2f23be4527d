"""Screening metrics, threshold choice on val, and the SageMaker metric lines.

Every metric line the job prints has the form

    METRIC <name>=<float>

and the regex for <name> is `METRIC <name>=([-+0-9.eE]+|nan)` (SageMaker takes
the first group). `METRIC_DEFINITIONS` (defined in functions/screening/training_contract.py,
which imports no AWS SDK) lists the ones the retrain Lambda hands to CreateTrainingJob.
"""

from __future__ import annotations

import math
import sys
from typing import TextIO

import numpy as np
from sklearn.metrics import confusion_matrix, roc_auc_score, roc_curve

# One list for the job and for the retrain Lambda that hands the regexes to SageMaker. The
# module is AWS-free: the training image does not install boto3 (training/requirements.txt).
from screening.training_contract import METRIC_DEFINITIONS, METRIC_NAMES  # noqa: F401


def print_metric(name: str, value: float, stream: TextIO | None = None) -> None:
    print(f"METRIC {name}={value:.6f}", file=stream or sys.stdout, flush=True)


def sensitivity_at_specificity(labels: np.ndarray, scores: np.ndarray, specificity: float) -> float:
    """Highest sensitivity reachable with specificity >= the given value."""
    fpr, tpr, _ = roc_curve(labels, scores)
    ok = fpr <= 1.0 - specificity + 1e-12
    return float(tpr[ok].max()) if ok.any() else 0.0


def choose_threshold(labels: np.ndarray, scores: np.ndarray, min_sensitivity: float = 0.9) -> float:
    """On val: the Youden-optimal threshold among those keeping sensitivity >= min_sensitivity.

    A screening test must not miss disease, so sensitivity is a constraint and
    specificity is what the threshold then maximises.
    """
    fpr, tpr, thresholds = roc_curve(labels, scores)
    thresholds = np.clip(thresholds, 0.0, 1.0)
    ok = tpr >= min_sensitivity
    if not ok.any():
        ok = np.ones_like(tpr, dtype=bool)
    youden = np.where(ok, tpr - fpr, -np.inf)
    best = int(np.argmax(youden))
    # Put the cut half-way to the next lower score so val ties don't decide it.
    lower = thresholds[best + 1] if best + 1 < len(thresholds) else 0.0
    return float((thresholds[best] + lower) / 2.0)


def classification_report(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict:
    """All figures the model card and metrics.json carry, for one labelled set."""
    labels = np.asarray(labels).astype(int)
    scores = np.asarray(scores, dtype=float)
    predicted = (scores >= threshold).astype(int)
    tn, fp, fn, tp = (int(v) for v in confusion_matrix(labels, predicted, labels=[0, 1]).ravel())

    def ratio(a: int, b: int) -> float:
        return a / b if b else math.nan

    precision, recall = ratio(tp, tp + fp), ratio(tp, tp + fn)
    both_classes = len(set(labels.tolist())) == 2
    return {
        "n": int(len(labels)),
        "n_glaucoma": int(labels.sum()),
        "n_normal": int((labels == 0).sum()),
        "threshold": float(threshold),
        "accuracy": ratio(tp + tn, len(labels)),
        "precision": precision,
        "sensitivity": recall,
        "specificity": ratio(tn, tn + fp),
        "f1": 2 * precision * recall / (precision + recall) if precision + recall > 0 else math.nan,
        "roc_auc": float(roc_auc_score(labels, scores)) if both_classes else math.nan,
        "sensitivity_at_95_specificity": (
            sensitivity_at_specificity(labels, scores, 0.95) if both_classes else math.nan),
        "confusion_matrix": {"tn": tn, "fp": fp, "fn": fn, "tp": tp},
    }
