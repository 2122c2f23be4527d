"""Test-time augmentation across scales: the second trunk pass on the mirror image at a lower
resolution, in the grouped 5-fold CV.

    ACRIMA_DIR=/path/to/acrima PYTHONPATH=functions:. python training/experiments/multiscale_cv.py \
        [--size 160] [--c 0.1]

Why: the served second pass (the mirror image at 224 px, row 52) averages out left-right framing
only. The same image read at a lower resolution (the 224-px model input resized inside the graph,
bilinear) sees less of the fine detail that blur and JPEG remove and ACRIMA's classes differ in
(normals sharper), and costs (size / 224)^2 of a pass: at 160 px, about half, so the photograph at
224 plus its mirror image at 160 costs 1.5 passes, and with the mirror image at 224 as well, 2.5.

Arms, on the same folds, views and recipe as `tta_cv.py 6 0.1 mirror-head adapted` (row 52, whose
cached 224-px features are reused): served (224 + its mirror); one head fitted on both scales' rows
(every view and its mirror image at 224 and at `--size`), scored as the mean logit over the view at
224 and its mirror image at `--size` (1.5 passes), or over the view at 224 and both images at
`--size` (2 passes), or over all four (3 passes, over the budget, for reference); and one head on
the view's 224-px features beside its mirror image's `--size` ones (1.5 passes); and `--size`
alone, one view and with its mirror image (a larger size reads the 224-px input upsampled). The
`--size` features are cached in runs/multiscale_banks_<size>.npz.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from training.crossval import cross_validate, print_result  # noqa: E402
from training.experiments.tta_cv import SEED, cached_banks, served_banks  # noqa: E402
from training.features import pooled_model  # noqa: E402
from training.head import LinearHead  # noqa: E402
from training.network import backbone_weights_path, build_classifier  # noqa: E402


def resized_pooled_model(size: int, input_size: int = 224):
    """224-px model inputs -> the adapted trunk's pooled features of the same inputs at `size` px."""
    import keras

    trunk = backbone_weights_path(adapted=True)
    inner = pooled_model(build_classifier(input_size=size, backbone_weights=trunk))
    inputs = keras.Input((input_size, input_size, 3))
    resized = keras.layers.Resizing(size, size, interpolation="bilinear")(inputs)
    return keras.Model(inputs, inner(resized))


def mean_logit_scores(parts: list[np.ndarray]):
    """cross_validate's view_scores: the sigmoid of the head's mean logit over the given banks' views."""
    def scores(head: LinearHead, view: int, index: np.ndarray) -> np.ndarray:
        logit = np.mean([head.logits(part[view, index]) for part in parts], axis=0)
        return 1 / (1 + np.exp(-logit))

    return scores


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--c", type=float, default=0.1)
    args = parser.parse_args()
    bank, mirror, labels, widths = served_banks()
    small_bank, small_mirror = cached_banks(f"multiscale_banks_{args.size}",
                                            lambda: resized_pooled_model(args.size))
    served_fit = np.concatenate([bank, mirror])
    both_fit = np.concatenate([bank, mirror, small_bank, small_mirror])
    s = args.size
    arms = {
        "served: 224 + mirror 224 (2 passes)": (served_fit, [bank, mirror]),
        f"224 + mirror {s} ({1 + (s / 224) ** 2:.1f} passes)": (both_fit, [bank, small_mirror]),
        f"224 + {s} + mirror {s} ({1 + 2 * (s / 224) ** 2:.1f} passes)":
            (both_fit, [bank, small_bank, small_mirror]),
        f"224 + mirror 224 + {s} + mirror {s} ({2 + 2 * (s / 224) ** 2:.1f} passes)":
            (both_fit, [bank, mirror, small_bank, small_mirror]),
    }
    joined = np.concatenate([bank, small_mirror], axis=-1)  # one head reads both passes' features
    joined_mirror = np.concatenate([mirror, small_bank], axis=-1)
    runs = {arm: (bank, fit_bank, mean_logit_scores(parts)) for arm, (fit_bank, parts) in arms.items()}
    runs[f"one head on [224 | mirror {s}] features side by side ({1 + (s / 224) ** 2:.1f} passes)"] = (
        joined, np.concatenate([joined, joined_mirror]), None)
    small_fit = np.concatenate([small_bank, small_mirror])
    runs[f"one view at {s} ({(s / 224) ** 2:.1f} passes)"] = (small_bank, small_fit, None)
    runs[f"{s} + mirror {s} ({2 * (s / 224) ** 2:.1f} passes)"] = (
        small_bank, small_fit, mean_logit_scores([small_bank, small_mirror]))
    for arm, (scored, fit_bank, view_scores) in runs.items():
        result = cross_validate(scored, labels, widths, args.c, seed=SEED, fit_bank=fit_bank,
                                view_scores=view_scores)
        print_result(arm, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
