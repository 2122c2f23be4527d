"""An ensemble of the served Lite0 trunk with EfficientNet-Lite1 or -Lite2, in the grouped 5-fold CV,
against the served mirror test-time augmentation (two Lite0 passes).

    make backbone BACKBONE=lite1      # the ImageNet trunk, converted from PyTorch (not committed)
    ACRIMA_DIR=/path/to/acrima PYTHONPATH=functions:. python training/experiments/ensemble_cv.py \
        [--backbone lite1] [--c 0.03,0.1,0.3]

Why: the issue names ensembles over Lite0-2 within the serving budget (model call <= 15 ms). With
mirror TTA the served call already runs Lite0 twice (13.0 ms); one view of Lite0 plus one of Lite1
costs about the same (6.3 + ~8.1 ms, card row 29), so the question is which second pass buys more
across acquisition groups: the mirror image through the same trunk, or the photograph through a
different one. The second trunk gets the served trunk's treatment (AdaBN on the stem, the first
stage and the second stage's first block, statistics from ACRIMA's training photographs and 3
re-acquisitions of each, training/adapt_trunk.py); the ensemble is one L2-logistic head on both
trunks' pooled features side by side (a learnt weighting; one graph, one call). Features of the
same views (tta_cv.py's seeds): Lite0's from `tta_cv.py 6 0.1 mirror-head adapted`'s cache, the
other's cached in runs/ensemble_cv_banks_<backbone>_adapted.npz. Every head is fitted on each view
and its mirror image (row 17), scored on one view or as the mean over the mirror.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from training import data as data_mod  # noqa: E402
from training.adapt_trunk import COPIES, adapted_trunk_arrays  # noqa: E402
from training.crossval import cross_validate, mirror_view_scores, summary_line  # noqa: E402
from training.experiments.tta_cv import SEED, banks, cache_path  # noqa: E402
from training.features import adaptation_views, pooled_model  # noqa: E402
from training.network import _stage_ends, backbone_weights_path, build_classifier  # noqa: E402

ORDER = ("train", "val", "test")


def other_trunk_banks(backbone: str) -> tuple[np.ndarray, np.ndarray]:
    """(bank, mirror) of the other trunk, adapted as the served one, for the 705 images in ORDER."""
    cache = Path(__file__).resolve().parents[2] / "runs" / f"ensemble_cv_banks_{backbone}_adapted.npz"
    if cache.exists():
        cached = np.load(cache)
        return cached["bank"], cached["mirror"]
    splits = data_mod.read_splits_csv(Path(os.environ["ACRIMA_DIR"]))
    loaded = {name: data_mod.load_images(splits[name]) for name in ORDER}
    below = _stage_ends(backbone)[0] + 2  # Lite0: 2 (the stem, block 0, block 1), as served
    views = adaptation_views(loaded["train"].images, loaded["train"].paths, COPIES, SEED)
    arrays, adapted = adapted_trunk_arrays(backbone_weights_path(backbone), views, below, backbone=backbone)
    print(f"{backbone}: {len(adapted)} batch-norm layers adapted on {len(views)} views", flush=True)
    trunk = cache.with_name(f"efficientnet_{backbone}_trunk_fundus_bn.npz")
    np.savez(trunk, **arrays)
    pooled = pooled_model(build_classifier(backbone=backbone, backbone_weights=trunk))
    pairs = [banks(pooled, loaded[name], 6, SEED + i) for i, name in enumerate(ORDER)]
    bank = np.concatenate([p for p, _ in pairs], axis=1)
    mirror = np.concatenate([m for _, m in pairs], axis=1)
    np.savez(cache, bank=bank, mirror=mirror)
    return bank, mirror


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", default="lite1", choices=("lite1", "lite2"))
    parser.add_argument("--c", default="0.03,0.1,0.3")
    args = parser.parse_args()
    lite0 = np.load(cache_path(6, adapted=True))
    labels, widths = lite0["labels"], lite0["widths"]
    other, other_mirror = other_trunk_banks(args.backbone)
    arms = {"lite0": (lite0["bank"], lite0["mirror"]), args.backbone: (other, other_mirror),
            f"lite0+{args.backbone}": (np.concatenate([lite0["bank"], other], axis=2),
                                       np.concatenate([lite0["mirror"], other_mirror], axis=2))}
    for c in [float(v) for v in args.c.split(",")]:
        for name, (bank, mirror) in arms.items():
            for tta in (False, True):
                result = cross_validate(bank, labels, widths, c, seed=SEED,
                                        fit_bank=np.concatenate([bank, mirror]),
                                        view_scores=mirror_view_scores(bank, mirror) if tta else None)
                passes = (2 if tta else 1) * (2 if "+" in name else 1)
                print(f"C {c:g} {name:12s} {'mirror TTA' if tta else 'one view  '} ({passes} passes): "
                      f"{summary_line(result)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
