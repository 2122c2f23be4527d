"""Sharpness erased from the features within each class, per view, in the grouped 5-fold CV.

    ACRIMA_DIR=/path/to/acrima PYTHONPATH=functions:. python training/experiments/erase_sharpness_cv.py \
        [--bins 10] [--c 0.1]

Why: blur is the suite's worst variant (p95 |dp| 0.84, specificity 0.630 under sigma 1.5): ACRIMA's
normal photographs are the sharper ones, so a blurred normal looks like glaucoma to the head. Row
55 erased the acquisition as the photograph's native width, one value for all its views; here the
concept is each view's own sharpness (the variance of the Laplacian of the model input,
sharpness_cv.py's measure), which differs between a photograph and its blurred, resampled or
JPEG-compressed re-acquisitions. LEACE's within-class erasure (training/erasure.py) then removes
the feature directions along which the head could read sharpness inside a class, estimated per
fold on its fitting rows; the map folds into the dense unit, so serving is unchanged.

Arms on the same folds, features and recipe as `tta_cv.py 6 0.1 mirror-head adapted` (row 52's
served recipe): served; log-sharpness erased (one direction); sharpness in `--bins` quantile bins
erased (one-hot, bins - 1 directions); both with row 55's 50-px width bins. Each grouped by native
width (the card's CV) and by the clean photograph's sharpness (sharpness_cv.py's groups). The views'
sharpness is cached in runs/view_sharpness_k6.npy (the re-acquisitions are redrawn with the bank's
seeds, which takes a few minutes).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from training import data as data_mod  # noqa: E402
from training.crossval import WIDTH_BIN, cross_validate, mirror_view_scores, summary_line  # noqa: E402
from training.erasure import width_bins  # noqa: E402
from training.experiments.sharpness_cv import sharpness  # noqa: E402
from training.experiments.tta_cv import SEED, cache_path  # noqa: E402
from training.features import augmented_inputs, load_photos  # noqa: E402

COPIES = 6


def view_sharpness(acrima: Path) -> np.ndarray:
    """(1 + COPIES, N) sharpness of every view in tta_cv.py's bank, the same draws (train, val, test)."""
    cache = cache_path(COPIES, adapted=True).parent / f"view_sharpness_k{COPIES}.npy"
    if cache.exists():
        return np.load(cache)
    splits = data_mod.read_splits_csv(acrima)
    per_split = []
    for i, name in enumerate(("train", "val", "test")):
        loaded = data_mod.load_images(splits[name])
        photos = load_photos(loaded.paths)
        seed = SEED + i
        rows = [sharpness(loaded.images)]
        for c in range(1, COPIES + 1):
            rows.append(sharpness(augmented_inputs(photos, seed * 1000 + c - 1)))
            print(f"  sharpness: {name} copy {c}/{COPIES}", flush=True)
        per_split.append(np.stack(rows))
    values = np.concatenate(per_split, axis=1)
    np.save(cache, values)
    return values


def sharpness_groups(log_sharpness: np.ndarray, groups: int = 10) -> np.ndarray:
    """Pseudo-widths that make cross_validate group the photographs by sharpness quantile instead of
    native width (sharpness_cv.py's groups, card row 57)."""
    edges = np.quantile(log_sharpness, np.linspace(0, 1, groups + 1)[1:-1])
    return np.searchsorted(edges, log_sharpness) * WIDTH_BIN


def quantile_one_hot(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    index = np.searchsorted(edges, values)
    return (index[..., None] == np.arange(len(edges) + 1)).astype(np.float64)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bins", type=int, default=10)
    parser.add_argument("--c", type=float, default=0.1)
    args = parser.parse_args()
    cached = np.load(cache_path(COPIES, adapted=True))
    bank, mirror, labels, widths = cached["bank"], cached["mirror"], cached["labels"], cached["widths"]
    sharp = np.log(view_sharpness(Path(os.environ["ACRIMA_DIR"])))
    both = np.concatenate([sharp, sharp])  # a mirror image is as sharp as its view
    edges = np.quantile(sharp, np.linspace(0, 1, args.bins + 1)[1:-1])
    widths_one_hot = np.broadcast_to(width_bins(widths, 50), (len(both), *width_bins(widths, 50).shape))
    concepts = {
        "served": None,
        "log-sharpness erased": both[..., None],
        f"sharpness in {args.bins} bins erased": quantile_one_hot(both, edges),
        f"{args.bins} sharpness bins + 50-px width bins erased": np.concatenate(
            [quantile_one_hot(both, edges), widths_one_hot], axis=-1),
    }
    groupings = {"native width": widths, "sharpness": sharpness_groups(sharp[0])}
    over_mirror = mirror_view_scores(bank, mirror)
    for grouping, by in groupings.items():
        for arm, concept in concepts.items():
            result = cross_validate(bank, labels, by, args.c, seed=SEED,
                                    fit_bank=np.concatenate([bank, mirror]), view_scores=over_mirror,
                                    erase_concept=concept)
            print(f"grouped by {grouping}, {arm}: {summary_line(result)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
