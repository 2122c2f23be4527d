"""How a model holds beyond the invariance suite's ranges (card, experiment 42).

    ACRIMA_DIR=... PYTHONPATH=functions:. python training/experiments/beyond_suite.py [--mirror-tta] [MODEL_DIR ...]

Two things another hospital's crops may do that the suite does not reach, on the test split,
scored as serving scores them at each model's own threshold:
- frame the disc tighter: centre crops keeping 70 %, 60 % and 50 % of each side (the suite
  stops at 80 %; ACRIMA's disc spans about half the crop side);
- save the crop at a smaller pixel count: shorter side 300 down to 112 px (ACRIMA's crops are
  178-1,420 px wide; the model works at 224), each a JPEG at quality 95 as the suite's variants.
With --mirror-tta every input is scored as the mean logit over it and its mirror image, whatever
the model's card says (screening.inference's mirror test-time augmentation).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from screening.config import BUNDLED_MODEL_DIR
from training import evaluate
from training.acquisition import crop, encode, resample
from training.data import read_splits_csv
from training.metrics import classification_report
from training.robustness import variant_inputs

VARIANTS = {
    **{f"crop {f:.0%}": (lambda im, f=f: encode(crop(im, f))) for f in (0.7, 0.6, 0.5)},
    **{f"saved at {s} px": (lambda im, s=s: encode(resample(im, s))) for s in (300, 224, 180, 140, 112)},
}


def main() -> int:
    test = read_splits_csv(Path(os.environ["ACRIMA_DIR"]))["test"]
    paths, labels = list(test.paths), np.asarray(test.labels)
    args = sys.argv[1:]
    mirror_tta = "--mirror-tta" in args
    models = [Path(m) for m in args if m != "--mirror-tta"] or [BUNDLED_MODEL_DIR]
    inputs = {name: variant_inputs(paths, variant) for name, variant in {"clean": encode, **VARIANTS}.items()}
    augmentation = "mirror" if mirror_tta else None  # None: as the model's card says

    def score(model: Path, images: np.ndarray) -> tuple[np.ndarray, float | None]:
        return evaluate.score(model, images, test_time_augmentation=augmentation)

    for model in models:
        clean, threshold = score(model, inputs["clean"])
        print(f"{model} (threshold {threshold:.3f}{', mirror TTA' if mirror_tta else ''})")
        for name, images in inputs.items():
            print(f"  {variant_line(name, labels, score(model, images)[0], clean, threshold)}")
    return 0


def variant_line(name: str, labels: np.ndarray, p: np.ndarray, clean: np.ndarray, threshold: float) -> str:
    """A variant's figures at the model's own threshold, and how far it moved p from the clean inputs."""
    r = classification_report(labels, p, threshold)
    delta = np.abs(p - clean)
    return (f"{name:16s} AUC {r['roc_auc']:.3f} sens {r['sensitivity']:.3f} spec {r['specificity']:.3f}"
            f"  |dp| median {np.median(delta):.3f} p95 {np.percentile(delta, 95):.3f}")


if __name__ == "__main__":
    raise SystemExit(main())
