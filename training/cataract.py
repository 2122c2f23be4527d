"""Cataract, the second condition: severity (0-10) and referable cataract from full-field photographs.

    python -m training.cataract --data /path/to/csdi --model-dir models/cataract

The sub-mode of the training job for CSDI-style data (annotations.csv with an expert severity per
image, splits.csv with a patient-grouped split). Why this shape:
- the frozen EfficientNet-Lite0 trunk (the glaucoma model's, training/network.py) on the whole
  field padded to square (screening.preprocessing, the one preprocessing path), global average
  pooled: 187 images are far too few to fine-tune anything;
- one ridge regression from the pooled features to the expert severity; the referable
  probability is a logistic function of that severity estimate (fitted on train), so the served
  graph keeps ONE dense unit: the heatmap (class-activation map) works unchanged and the severity
  is an affine function of the logit, written in the card (`severity_from_logit`);
- "referable" = expert severity >= 4 (moderate or worse: the CSDI experts' descriptions start
  recommending follow-up/surgery there), "not referable" = <= 2.5 (clear to mild); 3-3.5 is the
  graders' boundary band: left out of the binary target and its metrics, but still predicted.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from screening.preprocessing import preprocess_bytes

CONDITION = "cataract"
CLASS_NAMES = ("normal", "cataract")
REFERABLE_AT = 4.0
NOT_REFERABLE_AT = 2.5
INPUT_SIZE = 224
DEFAULT_DATA = Path(os.environ["CSDI_DIR"]) if os.environ.get("CSDI_DIR") else None  # the data is never bundled


def referable_target(severity: np.ndarray) -> np.ndarray:
    """1 referable, 0 not, -1 the boundary band (left out of the binary target)."""
    return np.where(severity >= REFERABLE_AT, 1, np.where(severity <= NOT_REFERABLE_AT, 0, -1))


def read_csdi(data: Path) -> list[dict]:
    """Rows of splits.csv joined with annotations.csv (file, patient, severity, split, disc box...)."""
    notes = {r["file"]: r for r in csv.DictReader((data / "annotations.csv").open())}
    rows = []
    for r in csv.DictReader((data / "splits.csv").open()):
        row = dict(notes.get(r["file"], {}))
        row.update(r)
        row["severity"] = float(r["severity"])
        rows.append(row)
    return rows


def load_inputs(data: Path, rows: list[dict], size: int = INPUT_SIZE) -> np.ndarray:
    return np.stack([preprocess_bytes((data / r["file"]).read_bytes(), size=size)[0] for r in rows])


def trunk_model(size: int = INPUT_SIZE):
    from training.network import build_classifier

    model = build_classifier(input_size=size, dropout=0.0)
    model._name = "cataract_screen"
    return model


def pooled_features(model, images: np.ndarray, batch_size: int = 16) -> np.ndarray:
    import keras

    from training.network import POOL_LAYER

    pooled = keras.Model(model.inputs, model.get_layer(POOL_LAYER).output)
    return pooled.predict(images, batch_size=batch_size, verbose=0)


class SeverityHead:
    """Ridge (features -> severity) then logistic (severity -> P(referable)); both linear in the features."""

    def __init__(self, alpha: float = 10.0) -> None:
        self.alpha = alpha

    def fit(self, features: np.ndarray, severity: np.ndarray) -> "SeverityHead":
        from sklearn.linear_model import LogisticRegression, Ridge
        from sklearn.preprocessing import StandardScaler

        self.scaler = StandardScaler().fit(features)
        self.ridge = Ridge(alpha=self.alpha).fit(self.scaler.transform(features), severity)
        target = referable_target(severity)
        keep = target >= 0
        fitted = self.severity(features)[keep]
        self.logistic = LogisticRegression(C=1.0).fit(fitted[:, None], target[keep])
        return self

    def severity(self, features: np.ndarray) -> np.ndarray:
        return self.ridge.predict(self.scaler.transform(features))

    def logit(self, features: np.ndarray) -> np.ndarray:
        return self.logistic.coef_[0, 0] * self.severity(features) + self.logistic.intercept_[0]

    def probability(self, features: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.logit(features)))

    def dense_weights(self) -> tuple[np.ndarray, float]:
        """(kernel (F,), bias) of the one dense unit whose sigmoid is P(referable)."""
        w = self.ridge.coef_ / self.scaler.scale_
        b = self.ridge.intercept_ - float(np.sum(self.ridge.coef_ * self.scaler.mean_ / self.scaler.scale_))
        a, c = self.logistic.coef_[0, 0], self.logistic.intercept_[0]
        return (a * w).astype(np.float32), float(a * b + c)

    def severity_from_logit(self) -> dict:
        a, c = float(self.logistic.coef_[0, 0]), float(self.logistic.intercept_[0])
        return {"slope": 1.0 / a, "intercept": -c / a}


def figures(severity: np.ndarray, estimate: np.ndarray, probability: np.ndarray,
            threshold: float | None = None) -> dict:
    from scipy.stats import spearmanr
    from sklearn.metrics import roc_auc_score

    target = referable_target(severity)
    keep = target >= 0
    out = {"n": int(len(severity)), "n_binary": int(keep.sum()), "n_referable": int((target == 1).sum()),
           "spearman": float(spearmanr(estimate, severity).statistic),
           "mae_severity": float(np.mean(np.abs(np.clip(estimate, 0, 10) - severity)))}
    if len(set(target[keep])) == 2:
        out["roc_auc"] = float(roc_auc_score(target[keep], probability[keep]))
    if threshold is not None:
        predicted = probability[keep] >= threshold
        y = target[keep] == 1
        out.update(threshold=float(threshold),
                   sensitivity=float((predicted & y).sum() / max(y.sum(), 1)),
                   specificity=float((~predicted & ~y).sum() / max((~y).sum(), 1)))
    return out


def threshold_on_val(severity: np.ndarray, probability: np.ndarray, min_sensitivity: float = 0.9) -> float:
    """The highest threshold keeping sensitivity >= min_sensitivity on val (referable cataract missed
    costs more than a needless referral); Youden's J breaks ties."""
    target = referable_target(severity)
    keep = target >= 0
    y, p = target[keep] == 1, probability[keep]
    best = (-1.0, 0.5)
    for t in np.unique(p):
        pred = p >= t
        sens = (pred & y).sum() / max(y.sum(), 1)
        spec = (~pred & ~y).sum() / max((~y).sum(), 1)
        if sens >= min_sensitivity and sens + spec - 1 > best[0]:
            best = (sens + spec - 1, float(t))
    return best[1]


def cross_validate(features: np.ndarray, rows: list[dict], folds: int = 5, alpha: float = 10.0,
                   seed: int = 0) -> dict:
    """Patient-grouped k-fold over train+val (the test split stays untouched)."""
    from sklearn.model_selection import GroupKFold

    severity = np.array([r["severity"] for r in rows])
    groups = np.array([r["patient"] for r in rows])
    per_fold = []
    splitter = GroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train_idx, test_idx in splitter.split(features, severity, groups):
        head = SeverityHead(alpha).fit(features[train_idx], severity[train_idx])
        per_fold.append(figures(severity[test_idx], head.severity(features[test_idx]),
                                head.probability(features[test_idx])))
    summary = {}
    for key in ("roc_auc", "spearman", "mae_severity"):
        values = np.array([f[key] for f in per_fold if key in f])
        summary[key] = {"mean": float(values.mean()), "sd": float(values.std(ddof=1)),
                        "folds": [round(float(v), 4) for v in values]}
    return summary


def export(model, head: SeverityHead, model_dir: Path, card: dict) -> None:
    """The .keras file, the TFLite file (same signature as glaucoma's) and the card."""
    from training.export import export_tflite
    from training.network import OUTPUT_LAYER

    kernel, bias = head.dense_weights()
    model.get_layer(OUTPUT_LAYER).set_weights([kernel[:, None], np.array([bias], np.float32)])
    model_dir.mkdir(parents=True, exist_ok=True)
    model.save(model_dir / "glaucoma.keras")  # the file names are the registry's, whatever the condition
    export_tflite(model, model_dir / "glaucoma.tflite")
    (model_dir / "model.json").write_text(json.dumps(card, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, required=DEFAULT_DATA is None,
                        help="CSDI folder (annotations.csv, splits.csv, images/); default $CSDI_DIR")
    parser.add_argument("--model-dir", type=Path, default=Path("models") / CONDITION)
    parser.add_argument("--alpha", type=float, default=10.0, help="ridge penalty (chosen by CV: 1/10/100/1000)")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--model-version", default="csdi-effl0-ridge-v2")
    args = parser.parse_args(argv)
    started = time.time()
    rows = read_csdi(args.data)
    model = trunk_model(INPUT_SIZE)
    features = pooled_features(model, load_inputs(args.data, rows))
    severity = np.array([r["severity"] for r in rows])
    split = np.array([r["split"] for r in rows])
    train, val, test = (split == "train"), (split == "val"), (split == "test")
    trainval = train | val
    cv = cross_validate(features[trainval], [r for r, k in zip(rows, trainval) if k], args.folds, args.alpha)
    head = SeverityHead(args.alpha).fit(features[train], severity[train])
    threshold = threshold_on_val(severity[val], head.probability(features[val]))
    per_split = {name: figures(severity[mask], head.severity(features[mask]), head.probability(features[mask]),
                               threshold) for name, mask in (("train", train), ("val", val), ("test", test))}
    card = {
        "version": args.model_version, "condition": CONDITION, "class_names": list(CLASS_NAMES),
        "threshold": threshold, "input_size": INPUT_SIZE,
        "input_contract": "colour fundus photograph, the whole field (not a disc crop)",
        "input_framing": "full_field",
        "severity_from_logit": head.severity_from_logit(), "severity_range": [0.0, 10.0],
        "referable": {"positive": f"severity >= {REFERABLE_AT}", "negative": f"severity <= {NOT_REFERABLE_AT}",
                      "left_out_of_binary_target": f"{NOT_REFERABLE_AT} < severity < {REFERABLE_AT}"},
        "data": "CSDI (Xie et al. 2025), 187 full-field photographs; licence treated as CC BY-NC 4.0",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "metrics": {"split": "test", **per_split["test"]},
        "cross_validation": {"folds": args.folds, "grouped_by": "patient", "over": "train+val", **cv},
        "splits": per_split, "alpha": args.alpha,
    }
    export(model, head, args.model_dir, card)
    json.dump({"cross_validation": cv, **per_split, "seconds": round(time.time() - started, 1)},
              sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
