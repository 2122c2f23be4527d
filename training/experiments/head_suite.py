"""The invariance suite for a head-level change, in seconds instead of a training run.

    ACRIMA_DIR=/path/to/acrima PYTHONPATH=functions:. python training/experiments/head_suite.py \
        [--sharpness-balance P,P,...] [--invariance-penalty A,A,...]

Why: a change that acts only on the head (its rows' weights, an erasure, C) leaves the trunk's
features as they are, so the served recipe can be refitted on `tta_cv.py 6 0.1 mirror-head
adapted`'s cached features (the same draws as `make model`: train, val and test in that order) and
scored on the suite's variants of the test split, whose features are taken once through the served
preprocessing and cached in runs/head_suite_variants.npz (about 2 minutes). The served head is
rebuilt as `training.train` builds it (C 0.1 on every view and its mirror image, Platt scaling on
val's mirror-averaged logit, the threshold on val and its copies, sensitivity >= 0.90, mirror TTA),
so the first arm reproduces the served model's figures.

Arms: the served head; `--sharpness-balance P`: each fitted view weighted count(sharpness bin) /
count(sharpness bin, class) ** P (sharpness_balance_cv.py, card row 64); `--invariance-penalty A`:
the head's logit variance across a photograph's views penalised (penalised_head, card row 65).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import NamedTuple

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from training import data as data_mod  # noqa: E402
from training.acquisition import EXTRA_VARIANTS, VARIANTS  # noqa: E402
from training.experiments.erase_sharpness_cv import view_sharpness  # noqa: E402
from training.experiments.sharpness_balance_cv import balance_weights  # noqa: E402
from training.experiments.tta_cv import cache_path, served_banks  # noqa: E402
from training.head import (LinearHead, expected_calibration_error, fit_head, penalised_head,  # noqa: E402
                           platt_scaling, with_more_photographs)
from training.metrics import choose_threshold, classification_report  # noqa: E402
from training.robustness import entry_line, variant_entry, variant_inputs  # noqa: E402

C = 0.1
MIN_SENSITIVITY = 0.9


def served_pooled_model():
    from training.features import pooled_model
    from training.network import backbone_weights_path, build_classifier

    return pooled_model(build_classifier(backbone_weights=backbone_weights_path(adapted=True)))


def variant_features(test_paths: list[Path], name: str = "head_suite_variants",
                     make_pooled=served_pooled_model) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per suite variant: the pooled features (by default the served trunk's) of the test split's
    variant inputs and of their mirror images, kept in runs/<name>.npz."""
    cache = cache_path(6, adapted=True).parent / f"{name}.npz"
    if cache.exists():
        stored = np.load(cache)
        return {name: (stored[f"{name}/view"], stored[f"{name}/mirror"])
                for name in {**VARIANTS, **EXTRA_VARIANTS}}
    pooled = make_pooled()
    features = {}
    for name, variant in {**VARIANTS, **EXTRA_VARIANTS}.items():
        inputs = variant_inputs(test_paths, variant)
        features[name] = (pooled.predict(inputs, batch_size=64, verbose=0),
                          pooled.predict(inputs[:, :, ::-1], batch_size=64, verbose=0))
        print(f"  features: {name}", flush=True)
    np.savez(cache, **{f"{name}/{part}": array for name, pair in features.items()
                       for part, array in zip(("view", "mirror"), pair)})
    return features


def served_head(bank, mirror, labels, train, val, weights=None, alpha=None,
                spread_bank=None, more_fit_bank=None, directions=None) -> tuple[LinearHead, float]:
    """training.train's frozen-trunk head and threshold on cached features (train, val: indices);
    with `alpha`, penalised_head instead of fit_head (its S from `spread_bank[:, train]` if given);
    `more_fit_bank` ((views, M, D) in the fitted views' order, (M,) labels): more images fitted on
    (crossval.cross_validate's); `directions`: penalised_head's."""
    fit_bank, fit_labels, photo_weights = with_more_photographs(
        np.concatenate([bank[:, train], mirror[:, train]]), labels[train], more_fit_bank)
    x, y = fit_bank.reshape(-1, bank.shape[-1]), np.tile(fit_labels, len(fit_bank))
    fitted = (fit_head(x, y, C, weights) if alpha is None
              else penalised_head(fit_bank, fit_labels, C, alpha,
                                  None if spread_bank is None else spread_bank[:, train], directions,
                                  photo_weights))
    head = platt_scaling(fitted, bank[0, val], labels[val], mirror[0, val])
    val_scores = head.probabilities_over_mirror(bank[:, val].reshape(-1, bank.shape[-1]),
                                                mirror[:, val].reshape(-1, bank.shape[-1]))
    return head, choose_threshold(np.tile(labels[val], len(bank)), val_scores, MIN_SENSITIVITY)


def suite_summary(head: LinearHead, threshold: float, clean: tuple, labels: np.ndarray,
                  variants: dict) -> str:
    clean_scores = head.probabilities_over_mirror(*clean)
    report = classification_report(labels, clean_scores, threshold)
    entries = {}
    for name, (view, mirrored) in variants.items():
        entries[name] = variant_entry(labels, clean_scores, head.probabilities_over_mirror(view, mirrored),
                                      threshold, report["roc_auc"], target=name in VARIANTS)
        print(entry_line(name, entries[name]), flush=True)
    targets = [e for name, e in entries.items() if name in VARIANTS]
    return (f"threshold {threshold:.3f}, test AUC {report['roc_auc']:.3f} sens {report['sensitivity']:.3f} "
            f"spec {report['specificity']:.3f} ECE {expected_calibration_error(labels, clean_scores):.3f}; "
            f"suite median p95 |dp| {np.median([e['delta_p_p95'] for e in targets]):.3f}, "
            f"spec >= 0.8 under {sum(e['specificity'] >= 0.8 for e in targets)} of {len(targets)}, "
            f"all targets {sum(e['meets_targets'] for e in targets)}, "
            f"blur spec {entries['blur_1.5']['specificity']:.3f}")


def split_indices(splits: dict, labels: np.ndarray) -> list[np.ndarray]:
    """[train, val, test] indices into the cached features, which hold the splits in that order."""
    order = ("train", "val", "test")
    if not np.array_equal(labels, np.concatenate([splits[name].labels for name in order])):
        raise SystemExit("the cached features are not in splits.csv's order: rerun tta_cv.py")
    sizes = [len(splits[name].paths) for name in order]
    return np.split(np.arange(sum(sizes)), np.cumsum(sizes)[:-1])


class SuiteSetup(NamedTuple):
    """What every head-level experiment starts from: the served trunk's cached features (tta_cv.py),
    the splits' indices into them and the test split's suite variants' features."""
    acrima: Path
    bank: np.ndarray
    mirror: np.ndarray
    labels: np.ndarray
    widths: np.ndarray
    splits: dict
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    variants: dict


def suite_setup() -> SuiteSetup:
    acrima = Path(os.environ["ACRIMA_DIR"])
    bank, mirror, labels, widths = served_banks()
    labels = labels.astype(int)
    splits = data_mod.read_splits_csv(acrima)
    train, val, test = split_indices(splits, labels)
    return SuiteSetup(acrima, bank, mirror, labels, widths, splits, train, val, test,
                      variant_features(list(splits["test"].paths)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sharpness-balance", default="", help="powers, comma-separated")
    parser.add_argument("--invariance-penalty", default="",
                        help="alphas, comma-separated (0: fit_head's problem)")
    args = parser.parse_args()
    acrima, bank, mirror, labels, _, _, train, val, test, variants = suite_setup()
    clean = (bank[0, test], mirror[0, test])

    arms: dict[str, np.ndarray | None] = {"served head": None}
    if args.sharpness_balance:
        sharp = np.log(view_sharpness(acrima))
        edges = np.quantile(sharp, np.linspace(0, 1, 11)[1:-1])
        bins = np.searchsorted(edges, np.concatenate([sharp, sharp]))[:, train].reshape(-1)
        for power in (float(p) for p in args.sharpness_balance.split(",")):
            arms[f"sharpness balance {power:g}"] = balance_weights(
                bins, np.tile(labels[train], 2 * len(bank)), power)
    runs = {arm: {"weights": weights} for arm, weights in arms.items()}
    for alpha in (float(a) for a in args.invariance_penalty.split(",") if a):
        runs[f"invariance penalty {alpha:g}"] = {"alpha": alpha}
    summaries = {}
    for arm, options in runs.items():
        head, threshold = served_head(bank, mirror, labels, train, val, **options)
        print(f"{arm}:", flush=True)
        summaries[arm] = suite_summary(head, threshold, clean, labels[test], variants)
    for arm, summary in summaries.items():
        print(f"{arm}: {summary}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
