"""How much a one-pixel shift of the model input moves the served model's logit, and the trunk's
pooled features with and without blur-pooled stride-2 steps (model card row 32).

    ACRIMA_DIR=<ACRIMA folder> PYTHONPATH=functions:. python training/experiments/shift.py [--model-dir DIR]

The canonical input is shifted by np.roll (the circle mask moves with it), so this measures the
network's own shift sensitivity, the aliasing of its stride-2 steps, not the preprocessing's.
"""

from __future__ import annotations

import argparse
import csv
import os
from pathlib import Path

import numpy as np

from screening.config import BUNDLED_MODEL_DIR
from screening.inference import GlaucomaModel
from screening.preprocessing import preprocess_bytes
from training.features import pooled_model
from training.network import NO_ANTIALIAS, build_classifier


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=BUNDLED_MODEL_DIR)
    args = parser.parse_args()
    root = Path(os.environ["ACRIMA_DIR"])
    rows = [r for r in csv.DictReader((root / "splits.csv").open()) if r["split"] == "test"]
    inputs = np.stack([preprocess_bytes((root / r["path"]).read_bytes())[0] for r in rows])
    model = GlaucomaModel(args.model_dir, num_threads=2)

    def probabilities(x: np.ndarray) -> np.ndarray:
        return np.array([model.predict(t[np.newaxis])[0].probability for t in x])

    clean = probabilities(inputs)
    print(f"model {model.version}, {len(rows)} test photographs")
    for name, shifted in (("1 px right", np.roll(inputs, 1, axis=2)), ("2 px right", np.roll(inputs, 2, axis=2)),
                          ("1 px down-right", np.roll(inputs, (1, 1), axis=(1, 2)))):
        p = probabilities(shifted)
        dp, dl = np.abs(p - clean), np.abs(logit(p) - logit(clean))
        print(f"  shift {name:16s} |dp| median {np.median(dp):.3f} p95 {np.percentile(dp, 95):.3f}; "
              f"|dlogit| median {np.median(dl):.3f} p95 {np.percentile(dl, 95):.3f}")
    print("pooled trunk features under a 1-px shift, median change over the mean spread between photographs:")
    for start, what in ((NO_ANTIALIAS, "plain trunk"), (5, "blur-pooled from block 5"), (3, "from block 3"),
                        (1, "from block 1"), (-1, "from the stem")):
        pooled = pooled_model(build_classifier(dropout=0.0, antialias_from_block=start))
        before = pooled.predict(inputs, verbose=0)
        after = pooled.predict(np.roll(inputs, 1, axis=2), verbose=0)
        spread = np.linalg.norm(before - before.mean(axis=0), axis=1).mean()
        print(f"  {what:26s} {np.median(np.linalg.norm(after - before, axis=1)) / spread:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
