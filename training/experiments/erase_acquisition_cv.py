"""Erase what the features say about the acquisition within each class (LEACE-style, Belrose et
al. 2023), then fit the head: grouped 5-fold CV against the served recipe on the same folds.

    ACRIMA_DIR=/path/to/acrima PYTHONPATH=functions:. python training/experiments/erase_acquisition_cv.py \
        [--concept log-width|width-bins] [--bin-px 100] [--directions N] [--c 0.1]

Why: ACRIMA's acquisition set-ups show in the photographs' native width, and width is tied to the
label (glaucoma files about twice as wide), so a head can key on acquisition. Row 50 projected out
the directions the *synthetic* re-acquisitions move the features along, and they carried the label
too. Here the concept is the *real* acquisition (log native width, or one-hot 100-px width bins),
and only its within-class part is erased: the class means of features and concept are removed
before their cross-covariance is taken, so a direction that separates the classes is kept unless
it also varies with width inside a class. The erasure is the least-squares one on whitened
features (the directions of the whitened within-class cross-covariance projected out, then
unwhitened; training/erasure.py), a linear map that a served dense unit absorbs at no cost. Per fold
it is estimated on the fold's fitting rows only (crossval.cross_validate's `erase_concept`, as
`training.train --erase-acquisition-bin-px` runs it); features as tta_cv.py caches them (`tta_cv.py 6
0.1 mirror-head adapted` first); heads on every view and its mirror image, scored as the mean over the
mirror.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from training.crossval import cross_validate, fold_line, mirror_view_scores, summary_line  # noqa: E402
from training.erasure import width_bins  # noqa: E402
from training.experiments.tta_cv import SEED, served_banks  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concept", default="log-width", choices=("log-width", "width-bins"))
    parser.add_argument("--c", type=float, default=0.1)
    parser.add_argument("--bin-px", type=int, default=100)
    parser.add_argument("--directions", type=int, default=0, help="erase only the strongest N (0: all)")
    args = parser.parse_args()
    bank, mirror, labels, widths = served_banks()
    concept = (np.log(widths.astype(float))[:, None] if args.concept == "log-width"
               else width_bins(widths, args.bin_px))

    over_mirror = mirror_view_scores(bank, mirror)
    for arm, erase in (("served", None), ("erased", concept)):
        result = cross_validate(bank, labels, widths, args.c, seed=SEED,
                                fit_bank=np.concatenate([bank, mirror]), view_scores=over_mirror,
                                erase_concept=erase, erase_directions=args.directions)
        for r in result["folds"]:
            print(f"{arm:6s} {fold_line(r)}", flush=True)
        print(f"{arm} ({args.concept}, bins {args.bin_px} px, directions {args.directions or 'all'}, "
              f"C {args.c:g}): {summary_line(result)}",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
