"""The head's logit variance across each photograph's views penalised (head.penalised_head), in the
grouped 5-fold CV, by width and by sharpness.

    ACRIMA_DIR=/path/to/acrima PYTHONPATH=functions:. python training/experiments/penalty_cv.py \
        [--alphas 0,0.003,0.01,0.03,0.1] [--c 0.1]

Why: head_suite.py found that a small penalty shortens the invariance suite's tail and lifts blur's
specificity for some clean AUC (which the issue allows to fall to 0.95); whether other acquisition
groups gain or lose decides it. Same folds, views and recipe as `tta_cv.py 6 0.1 mirror-head
adapted` (row 52); alpha 0 is the served head's problem solved by the same optimiser.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from training.crossval import cross_validate, mirror_view_scores, summary_line  # noqa: E402
from training.experiments.erase_sharpness_cv import sharpness_groups, view_sharpness  # noqa: E402
from training.experiments.tta_cv import SEED, served_banks  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alphas", default="0,0.003,0.01,0.03,0.1")
    parser.add_argument("--c", type=float, default=0.1)
    args = parser.parse_args()
    bank, mirror, labels, widths = served_banks()
    groupings = {"width": widths,
                 "sharpness": sharpness_groups(np.log(view_sharpness(Path(os.environ["ACRIMA_DIR"]))[0]))}
    for alpha in (float(a) for a in args.alphas.split(",")):
        for grouping, by in groupings.items():
            result = cross_validate(bank, labels, by, args.c, seed=SEED,
                                    fit_bank=np.concatenate([bank, mirror]),
                                    view_scores=mirror_view_scores(bank, mirror), invariance_penalty=alpha)
            print(f"alpha {alpha:g}, grouped by {grouping}: {summary_line(result)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
