"""How the head pools the trunk's feature grid: the served global average against the maximum and
generalised-mean (GeM) pooling, in the grouped 5-fold CV.

    ACRIMA_DIR=/path/to/acrima PYTHONPATH=functions:. python training/experiments/pooling_cv.py [--c 0.1]

Why: the average over the 14x14 grid moves whenever a crop, zoom or padding adds or removes
periphery, and the rim of the circle mask answers every change of framing (row 31); the strongest
response in each channel (max) or a soft version of it (GeM, p = 3, on the features shifted to be
non-negative) follows the disc's own structure more than how much fundus surrounds it. Serving
would lose the exact heatmap identity (the map's mean plus the bias is the logit), so it must buy
more than noise.

Same folds, views (every photograph, 6 re-acquisitions, each mirrored) and recipe as `tta_cv.py 6
0.1 mirror-head adapted` (row 52); the max and GeM features are new, cached in
runs/pooling_banks.npz (about 8 minutes).
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from training.crossval import cross_validate, mirror_view_scores, summary_line  # noqa: E402
from training.experiments.tta_cv import SEED, cached_banks, served_banks  # noqa: E402
from training.network import backbone_weights_path, build_classifier, feature_map  # noqa: E402

GEM_P = 3.0


def pooled_three_ways(model):
    """Photographs -> [max | GeM] pooled over the multi-scale grid (the average is the cached bank)."""
    import keras
    from keras import ops

    grid = feature_map(model)
    peak = ops.max(grid, axis=(1, 2))
    floor = ops.min(grid, axis=(1, 2), keepdims=True)
    gem = ops.power(ops.mean(ops.power(grid - floor + 1e-6, GEM_P), axis=(1, 2)), 1 / GEM_P) \
        + ops.squeeze(floor, axis=(1, 2))
    return keras.Model(model.inputs, ops.concatenate([peak, gem], axis=-1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--c", type=float, default=0.1)
    args = parser.parse_args()
    bank, mirror, labels, widths = served_banks()
    other_bank, other_mirror = cached_banks("pooling_banks", lambda: pooled_three_ways(
        build_classifier(backbone_weights=backbone_weights_path(adapted=True))))
    d = bank.shape[-1]
    arms = {
        "average (served)": (bank, mirror),
        "max": (other_bank[..., :d], other_mirror[..., :d]),
        f"GeM p={GEM_P:g}": (other_bank[..., d:], other_mirror[..., d:]),
        "average | max": (np.concatenate([bank, other_bank[..., :d]], -1),
                          np.concatenate([mirror, other_mirror[..., :d]], -1)),
    }
    print(f"average (served, as it is): {summary_line(cv(bank, mirror, labels, widths, args.c))}", flush=True)
    for arm, (b, m) in arms.items():
        # standardised per feature on the whole bank (label-free): the poolings differ in scale, C is shared
        mu, sd = b.reshape(-1, b.shape[-1]).mean(0), b.reshape(-1, b.shape[-1]).std(0) + 1e-6
        result = cv((b - mu) / sd, (m - mu) / sd, labels, widths, args.c)
        print(f"{arm}, standardised: {summary_line(result)}", flush=True)
    return 0


def cv(b: np.ndarray, m: np.ndarray, labels: np.ndarray, widths: np.ndarray, c: float) -> dict:
    return cross_validate(b, labels, widths, c, seed=SEED, fit_bank=np.concatenate([b, m]),
                          view_scores=mirror_view_scores(b, m))


if __name__ == "__main__":
    sys.exit(main())
