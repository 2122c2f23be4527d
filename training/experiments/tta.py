"""Test-time augmentation (TTA) of the committed model: is the mean over a horizontally
flipped copy (the other eye's view of the same disc) more invariant than one call?

    ACRIMA_DIR=/path/to/acrima PYTHONPATH=functions:. python training/experiments/tta.py

Scores val and test with the served TFLite model, one view and the mean logit over (image,
mirrored image); prints clean figures at the model's threshold and at a threshold chosen on
clean val, then the invariance suite (training/robustness.py) for both on the test split.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from screening.inference import GlaucomaModel, mean_over_mirror
from training import data as data_mod
from training.metrics import choose_threshold, classification_report
from training.robustness import invariance_report

ROOT = Path(__file__).resolve().parents[2]


def main() -> int:
    acrima = Path(os.environ["ACRIMA_DIR"])
    splits = data_mod.read_splits_csv(acrima)
    model = GlaucomaModel(ROOT / "models", num_threads=1, test_time_augmentation="none")  # one view

    def one(inputs: np.ndarray) -> np.ndarray:
        return model.probabilities_and_cams(inputs)[0]

    def mirrored(inputs: np.ndarray) -> np.ndarray:
        return mean_over_mirror(one(inputs), one(inputs[:, :, ::-1]))

    val, test = splits["val"], splits["test"]
    val_inputs, test_inputs = data_mod.load_images(val).images, data_mod.load_images(test).images
    summary = {}
    for name, predict in (("one view", one), ("mean over mirror", mirrored)):
        val_scores, test_scores = predict(val_inputs), predict(test_inputs)
        own = classification_report(np.array(test.labels), test_scores, model.threshold)
        chosen = choose_threshold(np.array(val.labels), val_scores)
        again = classification_report(np.array(test.labels), test_scores, chosen)
        print(f"{name}: test AUC {own['roc_auc']:.3f}; at the model's threshold {model.threshold:.3f} sens "
              f"{own['sensitivity']:.3f} spec {own['specificity']:.3f}; at val's {chosen:.3f} sens "
              f"{again['sensitivity']:.3f} spec {again['specificity']:.3f}", flush=True)
        report = invariance_report(predict, test.paths, np.array(test.labels), test_scores, model.threshold)
        targets = [v for v in report.values() if v["target"]]
        summary[name] = (float(np.median([v["delta_p_p95"] for v in targets])),
                         sum(v["specificity"] >= 0.8 for v in targets), len(targets))
        print(f"{name}: median over target variants of p95 |dp| {summary[name][0]:.3f}; "
              f"specificity >= 0.80 under {summary[name][1]} of {summary[name][2]}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
