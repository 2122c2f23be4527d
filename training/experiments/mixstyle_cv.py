"""MixStyle (Zhou et al. 2021, "Domain generalization with MixStyle") on the frozen trunk: extra
training rows whose early feature statistics come from another photograph, in the grouped 5-fold CV.

    ACRIMA_DIR=/path/to/acrima PYTHONPATH=functions:. python training/experiments/mixstyle_cv.py \
        [--cut 1] [--copies 3] [--alpha 0.1] [--c 0.1]

Why: a camera changes a photograph's early feature statistics (each channel's mean and spread over
the image: colour, contrast, sharpness), and ACRIMA's classes differ in exactly those (colour
balance alone scores AUC 0.887, card row 40). Re-normalising a photograph's block-`cut` feature
maps to the statistics of a random other training photograph (mixed by lambda ~ Beta(alpha,
alpha)) and running the rest of the frozen trunk gives the head rows where the style says nothing
about the label. Serving is unchanged (no layer is added), so it costs nothing a request.

Each fold repeats training/crossval.py's recipe on tta_cv.py's cached features (`tta_cv.py 6 0.1
mirror-head adapted` first; row 52's served recipe: adapted trunk, heads fitted on every view and
its mirror image, scored as the mean over the mirror); the extra rows are `--copies` new random
re-acquisitions of the fold's fitting photographs and their mirror images, styles drawn from the
fold's fitting photographs only (the held-out acquisition group never lends its style). Three arms
on the same folds: the served recipe, + the extra copies as they are (control: more copies), +
the extra copies style-mixed.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

from screening.preprocessing import MODEL_INPUT_SIZE  # noqa: E402
from training import data as data_mod  # noqa: E402
from training.crossval import (cross_validate, fold_line, grouped_folds, mirror_view_scores,  # noqa: E402
                               summary_line)
from training.experiments.tta_cv import SEED, served_banks  # noqa: E402
from training.features import augmented_inputs, load_photos  # noqa: E402
from training.finetune import lower_model, upper_model  # noqa: E402
from training.network import backbone_weights_path, build_classifier  # noqa: E402


def mixed_styles(acts: np.ndarray, partners: np.ndarray, lam: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """Each map normalised per channel over the image, then given the lam-weighted mix of its own
    statistics and its partner's."""
    mu = acts.mean(axis=(1, 2), keepdims=True)
    sigma = np.sqrt(acts.var(axis=(1, 2), keepdims=True) + eps)
    mu_p, sigma_p = mu[partners], sigma[partners]
    lam = lam.reshape(-1, 1, 1, 1)
    return ((acts - mu) / sigma * (lam * sigma + (1 - lam) * sigma_p) + lam * mu + (1 - lam) * mu_p
            ).astype(np.float32)


def extra_rows(lower, upper, photos: list, copies: int, alpha: float, seed: int, size: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """(plain, mixed): each (2 * copies, N, D) pooled features of new re-acquisitions and their
    mirror images, as they are and style-mixed within these photographs."""
    rng = np.random.default_rng(seed)
    plain, mixed = [], []
    for c in range(copies):
        inputs = augmented_inputs(photos, seed * 1000 + 500 + c, size)
        partners = (np.arange(len(photos)) + rng.integers(1, len(photos), len(photos))) % len(photos)
        lam = rng.beta(alpha, alpha, len(photos))
        for view in (inputs, inputs[:, :, ::-1]):
            acts = lower.predict(np.ascontiguousarray(view), batch_size=32, verbose=0)
            plain.append(pooled(upper, acts))
            mixed.append(pooled(upper, mixed_styles(acts, partners, lam)))
    return np.stack(plain), np.stack(mixed)


def pooled(upper, acts: np.ndarray, batch_size: int = 64) -> np.ndarray:
    return np.concatenate([upper(acts[i:i + batch_size], training=False).numpy()
                           for i in range(0, len(acts), batch_size)])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cut", type=int, default=1, help="the block whose output is style-mixed")
    parser.add_argument("--copies", type=int, default=3)
    parser.add_argument("--alpha", type=float, default=0.1)
    parser.add_argument("--c", type=float, default=0.1)
    args = parser.parse_args()
    bank, mirror, labels, widths = served_banks()
    splits = data_mod.read_splits_csv(Path(os.environ["ACRIMA_DIR"]))
    paths = [p for name in ("train", "val", "test") for p in splits[name].paths]
    photos = load_photos(paths)
    model = build_classifier(backbone_weights=backbone_weights_path(adapted=True))
    lower, upper = lower_model(model, args.cut), upper_model(model, args.cut)
    fit_bank = np.concatenate([bank, mirror])

    view_scores = mirror_view_scores(bank, mirror)

    extras: dict[str, list] = {"plain": [], "mixed": []}
    for k, (train_idx, _) in enumerate(grouped_folds(labels, widths, 5, SEED)):
        fit_idx, _ = train_test_split(train_idx, test_size=0.15, random_state=SEED + k,
                                      stratify=labels[train_idx])
        plain, mixed = extra_rows(lower, upper, [photos[i] for i in fit_idx], args.copies, args.alpha,
                                  SEED + 100 + k, MODEL_INPUT_SIZE)
        for name, rows in (("plain", plain), ("mixed", mixed)):
            extras[name].append((fit_idx, rows))
        print(f"fold {k}: extra rows for {len(fit_idx)} photographs", flush=True)

    for arm in ("served", "plain", "mixed"):
        def extra_fit_rows(fold: int, fit_idx: np.ndarray, arm=arm):
            if arm == "served":
                return None
            idx, rows = extras[arm][fold]
            assert np.array_equal(idx, fit_idx)
            return rows.reshape(-1, rows.shape[-1]), np.tile(labels[fit_idx], len(rows))

        result = cross_validate(bank, labels, widths, args.c, seed=SEED, fit_bank=fit_bank,
                                view_scores=view_scores, extra_fit_rows=extra_fit_rows)
        for r in result["folds"]:
            print(f"{arm:6s} {fold_line(r)}", flush=True)
        print(f"{arm} (cut {args.cut}, copies {args.copies}, alpha {args.alpha:g}, C {args.c:g}): "
              f"{summary_line(result)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
