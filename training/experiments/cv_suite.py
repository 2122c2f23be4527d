"""The invariance suite on all 705 photographs, each scored out of fold: the grouped 5-fold CV's
heads and thresholds applied to their held-out photographs' variants, for heads with the reframing
penalty at several alphas (0: row 52's head, 0.01: row 71's), with a paired bootstrap against the
first.

    ACRIMA_DIR=/path/to/acrima PYTHONPATH=functions:. python training/experiments/cv_suite.py \
        [--arms 0,0.01,0.03,0.01+rotate,0.01+photo] [--by-sharpness] [--rounds 1000]

Why: row 73 found that the test split's 105 photographs cannot separate two heads' suite median
p95 |dp| by less than about 0.1, and rows 71-72 chose between heads on smaller differences. Out of
fold, every ACRIMA photograph is held out once, scored by a head fitted without its acquisition
group (the folds are grouped by native width, or by sharpness), so each figure rests on 705
photographs (309 normals) instead of 105 (46), and on the other-acquisition split the issue asks
for. The variants' features (the served trunk's, every photograph and its mirror image) are taken
once through the serving preprocessing and cached in runs/cv_suite_variants.npz (about 15 minutes
on 2 cores). An arm is the penalty's alpha, with `+rotate` and/or `+photo` adding
nuisance_penalty.py's rotations or re-photographings to the reframings in S (card row 72); the
first arm is the one the others are compared with; `@C` sets the head's C (served: 0.1); `erase50`
(or `erase50d1`, one direction) is row 55's within-class erasure of the 50-px width bins instead. Each
variant's pooled specificity and sensitivity are counted at each photograph's own fold threshold;
its AUC change is the mean over folds.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from training import data as data_mod  # noqa: E402
from training.acquisition import VARIANTS  # noqa: E402
from training.crossval import cross_validate, mirror_view_scores, summary_line  # noqa: E402
from training.erasure import width_bins  # noqa: E402
from training.experiments.erase_sharpness_cv import sharpness_groups, view_sharpness  # noqa: E402
from training.experiments.head_suite import variant_features  # noqa: E402
from training.experiments.nuisance_penalty import family_views  # noqa: E402
from training.experiments.reframing_penalty import reframing_views  # noqa: E402
from training.experiments.tta_cv import SEED, served_banks  # noqa: E402


def out_of_fold(bank, mirror, labels, groups, variants, alpha, spread, c=0.1, erase_concept=None,
                erase_directions=0, more_fit_bank=None, on_fold=None, penalty_directions=None
                ) -> tuple[dict, dict]:
    """The CV result and each photograph's out-of-fold clean and variant probabilities, threshold
    and fold (`more_fit_bank`, `penalty_directions`, `on_fold`: crossval.cross_validate's, the last called
    after)."""
    n = len(labels)
    oof = {"clean": np.zeros(n), "threshold": np.zeros(n), "fold": np.zeros(n, int),
           **{name: np.zeros(n) for name in variants}}

    def record(fold, head, threshold, index):
        oof["clean"][index] = head.probabilities_over_mirror(bank[0, index], mirror[0, index])
        oof["threshold"][index], oof["fold"][index] = threshold, fold
        for name, (view, mirrored) in variants.items():
            oof[name][index] = head.probabilities_over_mirror(view[index], mirrored[index])
        if on_fold is not None:
            on_fold(fold, head, threshold, index)

    result = cross_validate(bank, labels, groups, c, seed=SEED, fit_bank=np.concatenate([bank, mirror]),
                            view_scores=mirror_view_scores(bank, mirror), invariance_penalty=alpha,
                            penalty_bank=spread if alpha else None, on_fold=record,
                            erase_concept=erase_concept, erase_directions=erase_directions,
                            more_fit_bank=more_fit_bank, penalty_directions=penalty_directions)
    return result, oof


def all_photographs(acrima: Path, wanted) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                                  list[Path], dict]:
    """The served trunk's cached features of all 705 photographs (tta_cv.py; labels as ints), their
    paths in that order, and the `wanted` suite variants' features of every one of them."""
    bank, mirror, labels, widths = served_banks()
    splits = data_mod.read_splits_csv(acrima)
    paths = [p for name in ("train", "val", "test") for p in splits[name].paths]
    variants = {name: v for name, v in variant_features(paths, name="cv_suite_variants").items()
                if name in wanted}
    return bank, mirror, labels.astype(int), widths, paths, variants


def headline(labels: np.ndarray, oof: dict, index: np.ndarray | None = None) -> dict:
    """The pooled suite figures over `index` (default: every photograph)."""
    index = np.arange(len(labels)) if index is None else index
    y, thr, clean = labels[index], oof["threshold"][index], oof["clean"][index]
    normal, glaucoma = y == 0, y == 1
    p95 = {name: float(np.percentile(np.abs(oof[name][index] - clean), 95)) for name in VARIANTS}
    spec = {name: float((oof[name][index][normal] < thr[normal]).mean()) for name in VARIANTS}
    return {"median p95 |dp|": float(np.median(list(p95.values()))), "crop_80 p95": p95["crop_80"],
            "zoom_1.2 p95": p95["zoom_1.2"], "rotate_-15 p95": p95["rotate_-15"],
            "blur spec": spec["blur_1.5"], "jpeg_q30 spec": spec["jpeg_q30"],
            "clean spec": float((clean[normal] < thr[normal]).mean()),
            "clean sens": float((clean[glaucoma] >= thr[glaucoma]).mean())}


def variant_table(labels: np.ndarray, oof: dict, names=VARIANTS) -> list[str]:
    normal, glaucoma = labels == 0, labels == 1
    folds = np.unique(oof["fold"])
    lines = []
    for name in names:
        delta = np.abs(oof[name] - oof["clean"])
        auc_change = np.mean([roc_auc_score(labels[oof["fold"] == k], oof[name][oof["fold"] == k])
                              - roc_auc_score(labels[oof["fold"] == k], oof["clean"][oof["fold"] == k])
                              for k in folds])
        lines.append(f"  {name:22s} |dp| median {np.median(delta):.3f} p95 {np.percentile(delta, 95):.3f} "
                     f"AUC change {auc_change:+.3f} "
                     f"sens {(oof[name][glaucoma] >= oof['threshold'][glaucoma]).mean():.3f} "
                     f"spec {(oof[name][normal] < oof['threshold'][normal]).mean():.3f}")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arms", default="0,0.01,0.03,0.1",
                        help="alpha[+rotate][+photo][@C] or eraseBINPX[dN][@C], comma-separated")
    parser.add_argument("--by-sharpness", action="store_true")
    parser.add_argument("--rounds", type=int, default=1000)
    args = parser.parse_args()
    acrima = Path(os.environ["ACRIMA_DIR"])
    bank, mirror, labels, widths, _, variants = all_photographs(acrima, VARIANTS)
    reframed = reframing_views(acrima, bank[0])
    groups = (sharpness_groups(np.log(view_sharpness(acrima)[0])) if args.by_sharpness else widths)
    arms = {}
    for arm in args.arms.split(","):
        penalty, _, c = arm.partition("@")
        if penalty.startswith("erase"):  # row 55's erasure of the width bins, e.g. erase50 or erase50d1
            bin_px, _, directions = penalty.removeprefix("erase").partition("d")
            result, oof = out_of_fold(bank, mirror, labels, groups, variants, 0.0, None, float(c or 0.1),
                                      width_bins(widths, int(bin_px)), int(directions or 0))
        else:
            alpha, *families = penalty.split("+")
            spread = np.concatenate([reframed] + [family_views(acrima, family) for family in families])
            result, oof = out_of_fold(bank, mirror, labels, groups, variants, float(alpha), spread,
                                      float(c or 0.1))
        arms[arm] = oof
        figures = headline(labels, oof)
        print(f"arm {arm}: CV {summary_line(result)}", flush=True)
        print("\n".join(variant_table(labels, oof)))
        print(f"arm {arm}, out of fold: " + ", ".join(f"{k} {v:.3f}" for k, v in figures.items()), flush=True)
    print_paired_bootstrap(labels, arms, args.rounds)
    return 0


def print_paired_bootstrap(labels: np.ndarray, arms: dict, rounds: int, figures=None) -> None:
    """Each arm's 95 % paired bootstrap interval against the first arm for every figure
    `figures(oof, pick)` gives (default: headline), the photographs resampled within class."""
    figures = figures or (lambda oof, pick: headline(labels, oof, pick))
    base, rng = next(iter(arms)), np.random.default_rng(0)
    by_class = [np.flatnonzero(labels == c) for c in (0, 1)]
    picks = [np.concatenate([rng.choice(idx, len(idx)) for idx in by_class]) for _ in range(rounds)]
    base_draws = [figures(arms[base], pick) for pick in picks]
    for arm, oof in list(arms.items())[1:]:
        draws = [figures(oof, pick) for pick in picks]
        intervals = {key: np.percentile([d[key] - b[key] for d, b in zip(draws, base_draws)], [2.5, 97.5])
                     for key in base_draws[0]}
        print(f"arm {arm} - arm {base}, 95 % paired bootstrap over the {len(labels)} photographs: "
              + "; ".join(f"{k} [{lo:+.3f}, {hi:+.3f}]" for k, (lo, hi) in intervals.items()), flush=True)


if __name__ == "__main__":
    sys.exit(main())
