"""The head's logit variance across reframings of each photograph penalised, in the grouped 5-fold
CV and on the invariance suite.

    ACRIMA_DIR=/path/to/acrima PYTHONPATH=functions:. python training/experiments/reframing_penalty.py \
        [--alphas 0,0.003,0.01,0.03,0.1] [--c 0.1] [--by-sharpness]

Why: row 69 found that tight crops and zoom move both classes' logits the same way (crop 80 %:
normals -2.00, glaucoma -1.17), a shift rather than lost information, while blur and JPEG q30 move
the classes towards each other. Row 65 penalised the logit's variance across all of a photograph's
re-acquisitions, blur's included, whose spread lies along the direction that tells the classes
apart, and lost AUC across acquisition groups. Penalising only the spread that reframing causes
could remove the crop and zoom tail (and whatever framing differs at another hospital) without
penalising that direction. S is the covariance of the served trunk's features of each photograph's
clean view and four random reframings (training/acquisition.py reframings: two crops keeping 70-95 %
of each side at random offsets, a zoom out by 0.80-0.95 onto black and a zoom in by 1.05-1.25; none
the suite's own 80 / 90 % or 0.8 / 1.2), taken as `training.train --reframing-penalty` takes them
and cached in runs/reframing_bank.npz (about 2 minutes). The head is otherwise the served one,
fitted on `tta_cv.py 6 0.1 mirror-head adapted`'s views (alpha 0: row 52's head). With --by-sharpness,
the CV is also run with the folds grouped by sharpness (sharpness_cv.py's groups, card row 57).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from training import data as data_mod  # noqa: E402
from training.crossval import cross_validate, mirror_view_scores, summary_line  # noqa: E402
from training.experiments.erase_sharpness_cv import sharpness_groups, view_sharpness  # noqa: E402
from training.experiments.head_suite import (SuiteSetup, served_head, served_pooled_model,  # noqa: E402
                                             suite_setup, suite_summary)
from training.experiments.tta_cv import SEED, cache_path  # noqa: E402
from training.features import load_photos, reframing_bank  # noqa: E402


def reframing_views(acrima: Path, clean: np.ndarray) -> np.ndarray:
    """(1 + REFRAMINGS, N, D): each photograph's clean features (`clean`, the bank's) and its
    reframings' (features.reframing_bank, with training.train's seeds per split)."""
    cache = cache_path(6, adapted=True).parent / "reframing_bank.npz"
    if not cache.exists():
        splits = data_mod.read_splits_csv(acrima)
        pooled = served_pooled_model()
        views = [reframing_bank(pooled, load_photos(splits[name].paths), SEED + i)
                 for i, name in enumerate(("train", "val", "test"))]
        np.savez(cache, views=np.concatenate(views, axis=1))
    return np.concatenate([clean[None], np.load(cache)["views"]])


def cv_groupings(setup: SuiteSetup, by_sharpness: bool) -> dict[str, np.ndarray]:
    """The grouped CV's groups: native width, and with `by_sharpness` sharpness too (card row 57)."""
    groupings = {"grouped CV": setup.widths}
    if by_sharpness:
        groupings["grouped by sharpness"] = sharpness_groups(np.log(view_sharpness(setup.acrima)[0]))
    return groupings


def penalty_arm(setup: SuiteSetup, spread_bank: np.ndarray, alpha: float, groupings: dict, c: float,
                name: str) -> str:
    """One penalised head: the grouped CV under each grouping (printed), then the served recipe's head
    refitted and its suite summary (alpha 0: the unpenalised head)."""
    bank, mirror, labels = setup.bank, setup.mirror, setup.labels
    for grouping, by in groupings.items():
        result = cross_validate(bank, labels, by, c, seed=SEED, fit_bank=np.concatenate([bank, mirror]),
                                view_scores=mirror_view_scores(bank, mirror), invariance_penalty=alpha,
                                penalty_bank=spread_bank)
        print(f"{name}, {grouping}: {summary_line(result)}", flush=True)
    head, threshold = served_head(bank, mirror, labels, setup.train, setup.val, alpha=alpha or None,
                                  spread_bank=spread_bank)
    test = setup.test
    return suite_summary(head, threshold, (bank[0, test], mirror[0, test]), labels[test], setup.variants)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alphas", default="0,0.003,0.01,0.03,0.1")
    parser.add_argument("--by-sharpness", action="store_true")
    parser.add_argument("--c", type=float, default=0.1)
    args = parser.parse_args()
    setup = suite_setup()
    spread_bank = reframing_views(setup.acrima, setup.bank[0])
    groupings = cv_groupings(setup, args.by_sharpness)
    summaries = {alpha: penalty_arm(setup, spread_bank, alpha, groupings, args.c, f"alpha {alpha:g}")
                 for alpha in (float(a) for a in args.alphas.split(","))}
    for alpha, summary in summaries.items():
        print(f"alpha {alpha:g}: {summary}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
