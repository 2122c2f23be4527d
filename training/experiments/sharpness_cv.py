"""The grouped 5-fold CV with the folds grouped by sharpness instead of native width: the issue's
other crossing ("folds split by acquisition size or sharpness group").

    ACRIMA_DIR=/path/to/acrima PYTHONPATH=functions:. python training/experiments/sharpness_cv.py \
        [--groups 10] [--c 0.1] [--erase-directions N]

Sharpness is the variance of the Laplacian of the model input's grey level inside the circle (what
the trunk sees, training/experiments/lap.py's measure), cut into `--groups` quantile groups; no group
is in both a fold's training and test images, so each held-out fold holds sharpness levels the head
never saw. The served recipe (heads on every view and its mirror image, mirror TTA) and one view, on
`tta_cv.py 6 0.1 mirror-head adapted`'s cached features and training/crossval.py's recipe; and with
row 55's width erasure, to see whether its gain across width groups holds across sharpness groups.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from scipy.ndimage import laplace  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from screening.preprocessing import LUMA_WEIGHTS, circle_mask  # noqa: E402
from training import data as data_mod  # noqa: E402
from training.crossval import WIDTH_BIN, cross_validate, mirror_view_scores, summary_line  # noqa: E402
from training.erasure import width_bins  # noqa: E402
from training.experiments.tta_cv import SEED, served_banks  # noqa: E402

def sharpness(images: np.ndarray) -> np.ndarray:
    """Variance of the Laplacian of each input's grey level standardised inside the circle (the
    trunk's input), taken away from the circle's edge."""
    inside = circle_mask(images.shape[1])[:, :, 0] > 0.99
    inside &= np.roll(inside, 2, 0) & np.roll(inside, -2, 0) & np.roll(inside, 2, 1) & np.roll(inside, -2, 1)
    values = []
    for image in images:
        grey = image @ np.array(LUMA_WEIGHTS, np.float32)
        grey = (grey - grey[inside].mean()) / (grey[inside].std() + 1e-6)
        values.append(laplace(grey)[inside].var())
    return np.array(values)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--groups", type=int, default=10)
    parser.add_argument("--c", type=float, default=0.1)
    parser.add_argument("--erase-directions", type=int, default=0,
                        help="row 55's erasure: the strongest N directions (0: all)")
    args = parser.parse_args()
    bank, mirror, labels, widths = served_banks()
    splits = data_mod.read_splits_csv(Path(os.environ["ACRIMA_DIR"]))
    images = np.concatenate([data_mod.load_images(splits[name]).images for name in ("train", "val", "test")])
    sharp = sharpness(images)
    edges = np.quantile(sharp, np.linspace(0, 1, args.groups + 1)[1:-1])
    groups = np.searchsorted(edges, sharp)
    print(f"sharpness: AUC against the label {roc_auc_score(labels, sharp):.3f}; groups' glaucoma share "
          + " ".join(f"{labels[groups == g].mean():.2f}" for g in range(args.groups)), flush=True)
    pseudo_widths = groups * WIDTH_BIN  # cross_validate groups by width // WIDTH_BIN

    over_mirror = mirror_view_scores(bank, mirror)
    arms = {"one view": {}, "served (mirror TTA)": {"view_scores": over_mirror},
            "served + width erasure 50 px": {"view_scores": over_mirror,
                                             "erase_concept": width_bins(widths, 50),
                                             "erase_directions": args.erase_directions}}
    for grouping, by in (("sharpness", pseudo_widths), ("native width", widths)):
        for arm, options in arms.items():
            result = cross_validate(bank, labels, by, args.c, seed=SEED,
                                    fit_bank=np.concatenate([bank, mirror]), **options)
            print(f"grouped by {grouping}, {arm}: {summary_line(result)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
