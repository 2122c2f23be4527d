"""Which trunk blocks the head reads (card row 19) on the served, adapted trunk: grouped 5-fold CV
and the invariance suite, for blocks 4+7+10 (served), 7+10, 4+10 and 10 alone.

    ACRIMA_DIR=/path/to/acrima PYTHONPATH=functions:. python training/experiments/blocks_suite.py

Why: block 4 (stride 8) carries the finest detail, which blur and JPEG remove and in which ACRIMA's
normals are sharper; if the head leaned on it for the sharpness cue, dropping it would steady the
suite. Dropping a block is a head-level change (its columns of the pooled vector left out), so the
served recipe is refitted on the cached features (head_suite.py) for the suite (card row 67).
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from training import data as data_mod  # noqa: E402
from training.crossval import cross_validate, mirror_view_scores, summary_line  # noqa: E402
from training.experiments.head_suite import (served_head, split_indices, suite_summary,  # noqa: E402
                                             variant_features)
from training.experiments.tta_cv import SEED, served_banks  # noqa: E402
from training.network import FEATURE_BLOCKS, block_specs  # noqa: E402


def block_columns(blocks: tuple[int, ...], read: tuple[int, ...] = FEATURE_BLOCKS) -> np.ndarray:
    """The pooled vector's columns of `blocks`, for a head reading the blocks `read` (concatenated in
    that order by network.multi_scale_features, each as wide as its block's output)."""
    widths = {b: block_specs()[b][4] for b in read}
    starts = dict(zip(read, np.cumsum([0] + [widths[b] for b in read[:-1]])))
    return np.concatenate([np.arange(starts[b], starts[b] + widths[b]) for b in blocks])


def score_block_arms(bank: np.ndarray, mirror: np.ndarray, variants: dict, labels: np.ndarray,
                     widths: np.ndarray, splits: dict, arms: dict[str, np.ndarray]) -> None:
    """For each arm (a name and the pooled vector's columns it keeps): the grouped CV and the suite,
    the served recipe refitted on those columns (head_suite.py)."""
    train, val, test = split_indices(splits, labels)
    for name, cols in arms.items():
        b, m = bank[..., cols], mirror[..., cols]
        result = cross_validate(b, labels, widths, 0.1, seed=SEED, fit_bank=np.concatenate([b, m]),
                                view_scores=mirror_view_scores(b, m))
        head, threshold = served_head(b, m, labels, train, val)
        with contextlib.redirect_stdout(io.StringIO()):  # the per-variant lines
            kept = {variant: (v[..., cols], vm[..., cols]) for variant, (v, vm) in variants.items()}
            suite = suite_summary(head, threshold, (b[0, test], m[0, test]), labels[test], kept)
        print(f"blocks {name}: grouped CV {summary_line(result)}", flush=True)
        print(f"blocks {name}: {suite}", flush=True)


def main() -> int:
    bank, mirror, labels, widths = served_banks()
    splits = data_mod.read_splits_csv(Path(os.environ["ACRIMA_DIR"]))
    variants = variant_features(list(splits["test"].paths))
    arms = {"+".join(map(str, blocks)): block_columns(blocks)
            for blocks in ((4, 7, 10), (7, 10), (4, 10), (10,))}
    score_block_arms(bank, mirror, variants, labels.astype(int), widths, splits, arms)
    return 0


if __name__ == "__main__":
    sys.exit(main())
