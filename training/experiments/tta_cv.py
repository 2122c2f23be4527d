"""Grouped 5-fold cross-validation of test-time augmentation (the mean logit over the photograph
and its mirror image) against one view, on the same folds, heads and features
(training/crossval.py's folds: native width in 50-px bins).

    ACRIMA_DIR=/path/to/acrima PYTHONPATH=functions:. python training/experiments/tta_cv.py [COPIES] [C,C,...] [mirror-head] [adapted]

The production recipe per fold (head on clean + re-acquired features of 85 % of the training
folds, Platt scaling and the threshold on the other 15 %); the mirror view's features come from
the same inputs flipped left to right. Prints per fold and mean +- sd for both, for each C given.
With `mirror-head` the heads are fitted on the mirrored views' features too (twice the training
rows, nothing more to serve). With `adapted` the trunk is the served one, with its lower batch-norm
statistics adapted (models/backbone/*_fundus_bn.npz; without it, ImageNet's, as rows 15-24 ran).
The features are cached in runs/tta_cv_banks_k<COPIES>[_adapted].npz (a rerun with other C values
reuses them).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from training import data as data_mod  # noqa: E402
from training.crossval import cross_validate, fold_line, mirror_view_scores  # noqa: E402
from training.features import feature_bank, load_photos, pooled_model, split_mirror  # noqa: E402
from training.network import DEFAULT_BACKBONE_WEIGHTS, backbone_weights_path, build_classifier  # noqa: E402

SEED = 42


def cache_path(copies: int = 6, adapted: bool = False) -> Path:
    """Where the features of all 705 images (as taken and mirrored) are kept between runs."""
    return Path(__file__).resolve().parents[2] / "runs" / f"tta_cv_banks_k{copies}{'_adapted' if adapted else ''}.npz"


def served_banks() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(bank, mirror, labels, widths) of `tta_cv.py 6 0.1 mirror-head adapted`: the served trunk's
    features of all 705 images, as the later experiments compare against them."""
    path = cache_path(6, adapted=True)
    if not path.exists():
        raise SystemExit(f"run `tta_cv.py 6 0.1 mirror-head adapted` first: {path} is missing")
    cached = np.load(path)
    return cached["bank"], cached["mirror"], cached["labels"], cached["widths"]


def cached_banks(name: str, make_pooled) -> tuple[np.ndarray, np.ndarray]:
    """(bank, mirror) of all 705 images (train, val, test; this script's re-acquisition draws) by the
    pooled model `make_pooled()` gives, made once and kept in runs/<name>.npz."""
    path = cache_path().parent / f"{name}.npz"
    if path.exists():
        cached = np.load(path)
        return cached["bank"], cached["mirror"]
    splits = data_mod.read_splits_csv(Path(os.environ["ACRIMA_DIR"]))
    pooled = make_pooled()
    pairs = [banks(pooled, data_mod.load_images(splits[split]), 6, SEED + i)
             for i, split in enumerate(("train", "val", "test"))]
    bank = np.concatenate([b for b, _ in pairs], axis=1)
    mirror = np.concatenate([m for _, m in pairs], axis=1)
    path.parent.mkdir(exist_ok=True)
    np.savez(path, bank=bank, mirror=mirror)
    return bank, mirror


def banks(pooled, images: data_mod.LoadedImages, copies: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(1 + copies, N, D) features of the inputs and of the same inputs mirrored."""
    both = feature_bank(pooled, load_photos(images.paths), images.images, copies, seed, mirror=True)
    return split_mirror(both, True)


def main() -> int:
    copies = int(sys.argv[1]) if len(sys.argv) > 1 else 6
    c_values = [float(v) for v in (sys.argv[2] if len(sys.argv) > 2 else "0.3").split(",")]
    flags = set(sys.argv[3:])
    mirror_head, adapted = "mirror-head" in flags, "adapted" in flags
    splits = data_mod.read_splits_csv(Path(os.environ["ACRIMA_DIR"]))
    order = ("train", "val", "test")
    cache = cache_path(copies, adapted)
    if cache.exists():
        cached = np.load(cache)
        bank, mirror, labels, widths = cached["bank"], cached["mirror"], cached["labels"], cached["widths"]
    else:
        loaded = {name: data_mod.load_images(splits[name]) for name in order}
        trunk = backbone_weights_path(adapted=True) if adapted else DEFAULT_BACKBONE_WEIGHTS
        pooled = pooled_model(build_classifier(backbone_weights=trunk))
        pairs = [banks(pooled, loaded[name], copies, SEED + i) for i, name in enumerate(order)]
        bank = np.concatenate([p for p, _ in pairs], axis=1)
        mirror = np.concatenate([m for _, m in pairs], axis=1)
        labels = np.concatenate([loaded[n].labels for n in order]).astype(int)
        widths = data_mod.native_widths([p for n in order for p in loaded[n].paths])
        cache.parent.mkdir(exist_ok=True)
        np.savez(cache, bank=bank, mirror=mirror, labels=labels, widths=widths)
    for c in c_values:
        cross_validate_both(bank, mirror, labels, widths, c, mirror_head)
    return 0


def cross_validate_both(bank, mirror, labels, widths, c: float, mirror_head: bool) -> None:
    """training/crossval.py's folds and recipe, scored on one view and on the mean over the mirror."""
    fit_bank = np.concatenate([bank, mirror]) if mirror_head else bank
    arms = {"one view": None, "mirror TTA": mirror_view_scores(bank, mirror)}
    for name, view_scores in arms.items():
        result = cross_validate(bank, labels, widths, c, seed=SEED, fit_bank=fit_bank, view_scores=view_scores)
        for r in result["folds"]:
            print(f"C {c:g} {name:10s} {fold_line(r)}", flush=True)
        print(f"C {c:g} {name}: " + ", ".join(f"{key} {value['mean']:.3f} +- {value['sd']:.3f}"
                                             for key, value in result["summary"].items()))


if __name__ == "__main__":
    sys.exit(main())
