"""Does a model read ACRIMA's class colours? (card, experiment 40)

    ACRIMA_DIR=... PYTHONPATH=functions:. python training/experiments/colour_swap.py [MODEL_DIR ...]

ACRIMA's two classes were photographed with different colour balance: over the lit fundus, the
red-to-green ratio alone separates glaucoma from normal. This prints that shortcut's AUC on all
705 photographs, then gives every test photograph the other class's colour balance (channel
gains that set its R/G and B/G to the other class's median on train) and scores each model on
the swapped photographs as serving would (the swap as a JPEG at quality 95, like the suite's
variants). A model that read the colour shortcut loses AUC and moves its answers here.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.metrics import roc_auc_score

from screening.config import BUNDLED_MODEL_DIR
from training.acquisition import encode
from training.data import read_splits_csv
from training.evaluate import score
from training.metrics import classification_report
from training.robustness import variant_inputs

LIT = 20  # mean channel level (0-255) above which a pixel is fundus, not the black surround


def channel_ratios(image: Image.Image) -> np.ndarray:
    """Mean R, G, B over the lit fundus, over the mean G."""
    x = np.asarray(image.convert("RGB"), np.float32)
    means = x[x.mean(axis=2) > LIT].mean(axis=0)
    return means / means[1]


def with_balance(image: Image.Image, target: np.ndarray) -> Image.Image:
    gains = target / channel_ratios(image)
    return Image.fromarray(np.clip(np.asarray(image.convert("RGB"), np.float32) * gains, 0, 255).astype(np.uint8))


def main() -> int:
    splits = read_splits_csv(Path(os.environ["ACRIMA_DIR"]))
    models = [Path(m) for m in sys.argv[1:]] or [BUNDLED_MODEL_DIR]
    every = [(p, l) for split in splits.values() for p, l in zip(split.paths, split.labels)]
    ratios = {p: channel_ratios(Image.open(p).reduce(4)) for p, _ in every}
    print(f"R/G of the lit fundus as a glaucoma score, all {len(every)} photographs: "
          f"AUC {roc_auc_score([l for _, l in every], [ratios[p][0] for p, _ in every]):.3f}")
    train = splits["train"]
    target = {label: np.median([ratios[p] for p, l in zip(train.paths, train.labels) if l == label], axis=0)
              for label in (0, 1)}
    print(f"train medians of R/G, B/G: normal {target[0][0]:.2f}, {target[0][2]:.2f}; "
          f"glaucoma {target[1][0]:.2f}, {target[1][2]:.2f}")
    test = splits["test"]
    labels = np.asarray(test.labels)
    clean = variant_inputs(list(test.paths), encode)
    swapped = np.concatenate([variant_inputs([path], lambda im, l=label: encode(with_balance(im, target[1 - l])))
                              for path, label in zip(test.paths, labels)])
    for model in models:
        p_clean, threshold = score(model, clean)
        p_swapped, _ = score(model, swapped)
        a = classification_report(labels, p_clean, threshold)
        b = classification_report(labels, p_swapped, threshold)
        delta = np.abs(p_swapped - p_clean)
        print(f"{model}: clean AUC {a['roc_auc']:.3f} sens {a['sensitivity']:.3f} spec {a['specificity']:.3f}; "
              f"class colours swapped AUC {b['roc_auc']:.3f} sens {b['sensitivity']:.3f} "
              f"spec {b['specificity']:.3f}; |dp| median {np.median(delta):.3f} p95 {np.percentile(delta, 95):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
