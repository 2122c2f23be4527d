"""A non-linear head against the linear one on the same cached features, folds and fitting rows
(card row 78), a quick probe.

    ACRIMA_DIR=/path/to/acrima CSDI_DIR=/path/to/csdi PYTHONPATH=functions:. \
        python training/experiments/mlp_head_cv.py

Why: the served head is one dense unit over 232 pooled trunk channels (blocks 4+7+10); a hidden layer
could combine them (a soft photograph's features with the disc's) in ways a line cannot. The head's
recipe is stripped to what both can share: every fitted view and its mirror image, standardised
features, no reframing penalty, no Platt scaling, no extra photographs; each photograph's out-of-fold
score is the mean logit over its view and mirror image. Thresholds: one, pooled, at sensitivity 0.90
on the out-of-fold clean scores; |dz|: the logit's move under a variant over the clean logits' sd
(the heads' probabilities are not calibrated alike, so |dp| would compare scales). The other-camera
proxies of row 76: ACRIMA saved at 140 px (sensitivity) and CSDI's 67 held-out patients' discs (the
share called glaucoma, each fold's head at the pooled threshold, mean over folds). About 40 s on
tta_cv.py's and csdi_normals.py's cached features.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
from scipy.special import logit
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

from training.acquisition import VARIANTS
from training.crossval import grouped_folds
from training.experiments.csdi_normals import csdi_features, low_pixel_features
from training.experiments.cv_suite import all_photographs

HEADS = {
    "linear (C 0.1)": lambda: LogisticRegression(C=0.1, class_weight="balanced", max_iter=3000),
    "MLP 64, L2 1": lambda: MLPClassifier((64,), alpha=1.0, max_iter=300, random_state=0),
    "MLP 128-64, L2 3": lambda: MLPClassifier((128, 64), alpha=3.0, max_iter=300, random_state=0),
}
SHOWN = ("blur_1.5", "jpeg_q30", "crop_80", "zoom_1.2", "rotate_-15", "darker_low_contrast", "saved_140")


def main() -> int:
    bank, mirror, labels, widths, paths, variants = all_photographs(Path(os.environ["ACRIMA_DIR"]), VARIANTS)
    variants = {**variants, **low_pixel_features(paths)}
    other = csdi_features(Path(os.environ["CSDI_DIR"]))
    held_out = other["split"] != "train"
    folds = grouped_folds(labels, widths)
    glaucoma = labels == 1
    for name, make in HEADS.items():
        started = time.monotonic()
        oof = {key: np.zeros(len(labels)) for key in ("clean", *variants)}
        csdi_scores = []
        for fit_idx, test_idx in folds:
            x = np.concatenate([bank[:, fit_idx], mirror[:, fit_idx]]).reshape(-1, bank.shape[-1])
            scaler = StandardScaler().fit(x)
            head = make().fit(scaler.transform(x), np.tile(labels[fit_idx], 2 * len(bank)))

            def score(view, mirrored, head=head, scaler=scaler):
                return 0.5 * sum(logit(np.clip(head.predict_proba(scaler.transform(v))[:, 1], 1e-6, 1 - 1e-6))
                                 for v in (view, mirrored))

            oof["clean"][test_idx] = score(bank[0, test_idx], mirror[0, test_idx])
            for key, (view, mirrored) in variants.items():
                oof[key][test_idx] = score(view[test_idx], mirrored[test_idx])
            csdi_scores.append(score(other["view"][held_out], other["mirror"][held_out]))
        threshold, spread = np.quantile(oof["clean"][glaucoma], 0.10), oof["clean"].std()
        parts = [f"clean AUC {roc_auc_score(labels, oof['clean']):.3f} spec {(oof['clean'][~glaucoma] < threshold).mean():.3f}"]
        for key in SHOWN:
            moved = np.abs(oof[key] - oof["clean"]) / spread
            parts.append(f"{key} AUC {roc_auc_score(labels, oof[key]):.3f} "
                         f"sens {(oof[key][glaucoma] >= threshold).mean():.3f} "
                         f"spec {(oof[key][~glaucoma] < threshold).mean():.3f} p95 |dz| {np.quantile(moved, 0.95):.2f}")
        parts.append(f"CSDI held out called glaucoma {np.mean([(s >= threshold).mean() for s in csdi_scores]):.0%}")
        print(f"{name} ({time.monotonic() - started:.0f} s): " + "; ".join(parts), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
