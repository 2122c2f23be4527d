"""Each photograph's pooled features rescaled before the head, in the grouped 5-fold CV.

    ACRIMA_DIR=/path/to/acrima PYTHONPATH=functions:. python training/experiments/feature_norm_cv.py [--c 0.1]

Why: if a camera's blur, exposure or compression mostly scaled a photograph's trunk activations up
or down, dividing them out per photograph would make the head blind to it at the cost of one
normalisation in the graph. Arms: the served features; each feature block's pooled vector (blocks
4, 7 and 10: 40, 80 and 112 channels) divided by its length; the whole vector divided by its
length; each block's vector standardised over its channels. Same folds, views, heads and scoring as
`tta_cv.py 6 0.1 mirror-head adapted` (row 52's served recipe), on its cached features.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from training.crossval import cross_validate, mirror_view_scores, summary_line  # noqa: E402
from training.experiments.tta_cv import SEED, served_banks  # noqa: E402
from training.network import LITE0_STAGES  # noqa: E402

# Channel ranges of the pooled vector: the ends of stages 3, 4 and 5 (network.FEATURE_BLOCKS).
_WIDTHS = [stage[4] for stage in LITE0_STAGES[2:5]]
BLOCK_SLICES = [slice(sum(_WIDTHS[:i]), sum(_WIDTHS[:i + 1])) for i in range(len(_WIDTHS))]


def per_block(features: np.ndarray, transform) -> np.ndarray:
    out = np.array(features, np.float32)
    for part in BLOCK_SLICES:
        out[..., part] = transform(features[..., part])
    return out


def unit_length(x: np.ndarray) -> np.ndarray:
    return x / (np.linalg.norm(x, axis=-1, keepdims=True) + 1e-6) * np.sqrt(x.shape[-1])


def standardised(x: np.ndarray) -> np.ndarray:
    return (x - x.mean(axis=-1, keepdims=True)) / (x.std(axis=-1, keepdims=True) + 1e-6)


ARMS = {
    "served": lambda b: b,
    "per-block unit length": lambda b: per_block(b, unit_length),
    "whole vector unit length": unit_length,
    "per-block standardised": lambda b: per_block(b, standardised),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--c", type=float, default=0.1)
    args = parser.parse_args()
    bank, mirror, labels, widths = served_banks()
    if bank.shape[-1] != BLOCK_SLICES[-1].stop:
        raise SystemExit(f"expected {BLOCK_SLICES[-1].stop} pooled channels, the cache has {bank.shape[-1]}")
    for arm, transform in ARMS.items():
        b, m = transform(bank), transform(mirror)
        result = cross_validate(b, labels, widths, args.c, seed=SEED, fit_bank=np.concatenate([b, m]),
                                view_scores=mirror_view_scores(b, m))
        print(f"{arm}: {summary_line(result)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
