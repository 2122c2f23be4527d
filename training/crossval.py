"""5-fold cross-validation of the frozen-trunk head, folds grouped by acquisition.

ACRIMA's image size tells the classes apart (glaucoma photographs are about
twice as large), and images of one size tend to come from one acquisition
set-up. Folds are therefore grouped by native image width (bins of
`WIDTH_BIN` px): no width bin is in both a fold's training and its test images,
so a model that keys on acquisition size pays for it here. Stratified by
class as far as the groups allow.

Each fold repeats the production recipe on its own images: head fitted on the
clean and re-acquired features of 85 % of the training folds, Platt scaling and
the threshold (sensitivity >= 0.90) on the other 15 %, scored on the test fold,
clean and re-acquired (one random re-acquisition per copy in the bank).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold, train_test_split

from training.erasure import within_class_erasure
from training.head import (LinearHead, expected_calibration_error, fit_head, penalised_head, platt_scaling,
                          with_more_photographs)
from training.metrics import choose_threshold, classification_report

WIDTH_BIN = 50


def acquisition_groups(widths: np.ndarray) -> np.ndarray:
    return np.asarray(widths) // WIDTH_BIN


def size_balance_weights(widths: np.ndarray, labels: np.ndarray, power: float, bin_px: int) -> np.ndarray:
    """A weight per image against the size shortcut (ACRIMA's glaucoma photographs are about twice
    as large): count(width bin, label)^-power among these images, mean 1, so rare pairs (small
    glaucoma, large normal photographs) count more. power 0: all 1."""
    pairs = np.stack([np.asarray(widths) // bin_px, np.asarray(labels)], axis=1)
    _, inverse, counts = np.unique(pairs, axis=0, return_inverse=True, return_counts=True)
    weights = counts[inverse.ravel()].astype(float) ** -power
    return weights / weights.mean()


def grouped_folds(labels: np.ndarray, widths: np.ndarray, folds: int = 5, seed: int = 42
                  ) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) indices of each fold, stratified by label, an acquisition group never split."""
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(labels)), labels, acquisition_groups(widths)))


def cross_validate(bank: np.ndarray, labels: np.ndarray, widths: np.ndarray, c: float, folds: int = 5,
                   seed: int = 42, min_sensitivity: float = 0.9, fit_bank: np.ndarray | None = None,
                   view_scores: Callable[[LinearHead, int, np.ndarray], np.ndarray] | None = None,
                   fit_weights: Callable[[np.ndarray], np.ndarray] | None = None,
                   extra_fit_rows: Callable[[int, np.ndarray],
                                            tuple[np.ndarray, np.ndarray] | None] | None = None,
                   erase_concept: np.ndarray | None = None, erase_directions: int = 0,
                   invariance_penalty: float = 0.0, penalty_bank: np.ndarray | None = None,
                   on_fold: Callable[[int, LinearHead, float, np.ndarray], None] | None = None,
                   more_fit_bank: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray] | None] | None = None,
                   penalty_directions: Callable[[np.ndarray], np.ndarray] | None = None) -> dict:
    """bank: (1 + copies, N, D) features of every image, clean first.

    For experiments (training/experiments/tta_cv.py): `fit_bank`, the rows the heads are fitted on
    (default: bank); `view_scores(head, view, index)`, the probabilities of one view of the images
    at `index` (default: the head on bank[view, index]), e.g. averaged with their mirror images';
    `fit_weights(index)`, a weight per image the head is fitted on, or per fitted row in fit_bank's
    order (default: none; training.train passes size_balance_weights); `extra_fit_rows(fold,
    fit_index)`, more (features, labels) rows the fold's head is fitted on, made from those images
    only (mixstyle_cv.py);
    `erase_concept` (N, k), the acquisition per image (or (views, N, k), per view of fit_bank), whose
    within-class information each fold's head has erased from its features first (`erase_directions`
    of them, 0: all), the erasure estimated on the fold's fitting rows (training/erasure.py);
    `invariance_penalty` alpha, the head's logit variance across each photograph's fitted views
    penalised (head.penalised_head), or with `penalty_bank` (views, N, D), its variance across these
    views of each fitting photograph; `on_fold(fold, head, threshold, test_index)`, called with each
    fold's calibrated head and threshold, to score more views of its held-out images (cv_suite.py);
    `more_fit_bank(fit_idx)`, ((views, M, D) in fit_bank's views, (M,) labels[, (M,) weights]) of
    more photographs the fold's head is fitted on: another camera's, or other views of the fold's own
    fitting images (csdi_normals.py; weights with invariance_penalty only); `penalty_directions(fit_idx)`, penalised_head's `directions` for the fold."""
    labels = np.asarray(labels).astype(int)
    groups = acquisition_groups(widths)
    fit_bank = bank if fit_bank is None else fit_bank
    per_fold = []
    for k, (train_idx, test_idx) in enumerate(grouped_folds(labels, widths, folds, seed)):
        fit_idx, cal_idx = train_test_split(train_idx, test_size=0.15, random_state=seed + k,
                                            stratify=labels[train_idx])
        weights = (None if fit_weights is None
                   else _fit_row_weights(fit_weights(fit_idx), len(fit_idx), len(fit_bank)))
        x, y = fit_bank[:, fit_idx].reshape(-1, bank.shape[-1]), np.tile(labels[fit_idx], len(fit_bank))
        erasure = None if erase_concept is None else within_class_erasure(
            x, _fit_concept(erase_concept, fit_idx, len(fit_bank)), y, max_directions=erase_directions)
        extra = None if extra_fit_rows is None else extra_fit_rows(k, fit_idx)
        if extra is not None:
            if weights is not None:
                raise ValueError("extra_fit_rows with fit_weights is not supported")
            x, y = np.concatenate([x, extra[0]]), np.concatenate([y, extra[1]])
        more = None if more_fit_bank is None else more_fit_bank(fit_idx)
        if more is not None:
            if weights is not None or erasure is not None or (len(more) > 2 and not invariance_penalty):
                raise ValueError("more_fit_bank is not combined with weights or erasure; its weights need "
                                 "invariance_penalty")
        if erasure is not None:
            x = erasure.apply(x)
        if invariance_penalty:
            if weights is not None or extra is not None or erasure is not None:
                raise ValueError("invariance_penalty is not combined with weights, extra rows or erasure")
            fitted, fitted_labels, photo_weights = with_more_photographs(fit_bank[:, fit_idx], labels[fit_idx],
                                                                         more)
            head = penalised_head(fitted, fitted_labels, c, invariance_penalty,
                                  None if penalty_bank is None else penalty_bank[:, fit_idx],
                                  None if penalty_directions is None else penalty_directions(fit_idx),
                                  photo_weights)
        else:
            if more is not None:  # the penalised head takes them as whole photographs instead
                x = np.concatenate([x, more[0].reshape(-1, bank.shape[-1])])
                y = np.concatenate([y, np.tile(more[1], len(more[0]))])
            head = fit_head(x, y, c, sample_weight=weights)
        if erasure is not None:
            head = erasure.fold_into(head)  # on raw features from here on
        head = platt_scaling(head, bank[0, cal_idx], labels[cal_idx])

        def score(view: int, index: np.ndarray) -> np.ndarray:
            return head.probabilities(bank[view, index]) if view_scores is None else view_scores(head, view, index)

        threshold = choose_threshold(np.tile(labels[cal_idx], len(bank)),
                                     np.concatenate([score(view, cal_idx) for view in range(len(bank))]),
                                     min_sensitivity)
        if on_fold is not None:
            on_fold(k, head, threshold, test_idx)
        clean = score(0, test_idx)
        figures = classification_report(labels[test_idx], clean, threshold)
        reacquired = np.stack([score(j, test_idx) for j in range(1, len(bank))])
        reacquired_labels = np.tile(labels[test_idx], len(reacquired))
        per_fold.append({
            "fold": k, "n_test": int(len(test_idx)), "n_test_glaucoma": int(labels[test_idx].sum()),
            "width_bins_test": sorted({int(g) * WIDTH_BIN for g in groups[test_idx]}),
            "roc_auc": figures["roc_auc"], "sensitivity": figures["sensitivity"],
            "specificity": figures["specificity"], "threshold": threshold,
            "ece": expected_calibration_error(labels[test_idx], clean),
            "reacquired_roc_auc": float(roc_auc_score(reacquired_labels, reacquired.ravel()))
            if len(reacquired) else float("nan"),
            "reacquired_delta_p_p95": float(np.percentile(np.abs(reacquired - clean), 95))
            if len(reacquired) else float("nan"),
        })
    summary = {}
    for key in ("roc_auc", "sensitivity", "specificity", "ece", "reacquired_roc_auc", "reacquired_delta_p_p95"):
        values = np.array([f[key] for f in per_fold], float)
        summary[key] = {"mean": float(np.mean(values)), "sd": float(np.std(values, ddof=1))}
    return {"folds": per_fold, "summary": summary, "grouping": f"native width in {WIDTH_BIN}-px bins",
            "c": c}


def _fit_row_weights(weights: np.ndarray, images: int, views: int) -> np.ndarray:
    """fit_weights' answer as one weight per fitted row: per image (the same for all its views) or
    already per row (views * images, in fit_bank's order: a view's own weight, e.g. by its sharpness)."""
    weights = np.asarray(weights, float)
    if len(weights) == images * views and views > 1:
        return weights
    if len(weights) != images:
        raise ValueError(f"fit_weights gave {len(weights)} weights for {images} images in {views} views")
    return np.tile(weights, views)


def _fit_concept(concept: np.ndarray, fit_idx: np.ndarray, views: int) -> np.ndarray:
    """The concept's rows in fit_bank's order: one per image (N, k), the same for all its views, or
    one per fitted view ((views, N, k): what differs between re-acquisitions, e.g. sharpness)."""
    concept = np.asarray(concept)
    if concept.ndim == 3:
        if len(concept) != views:
            raise ValueError(f"erase_concept has {len(concept)} views; the fitted bank {views}")
        return concept[:, fit_idx].reshape(-1, concept.shape[-1])
    return np.tile(concept[fit_idx], (views, 1))


def mirror_view_scores(bank: np.ndarray, mirror: np.ndarray
                       ) -> Callable[[LinearHead, int, np.ndarray], np.ndarray]:
    """cross_validate's `view_scores` for mirror test-time augmentation: each view scored as the mean
    logit over it and its mirror image (`mirror`: bank's views mirrored)."""
    def scores(head: LinearHead, view: int, index: np.ndarray) -> np.ndarray:
        return head.probabilities_over_mirror(bank[view, index], mirror[view, index])

    return scores


def fold_line(fold: dict) -> str:
    """One fold's figures on a line (the experiments' printouts)."""
    return (f"fold {fold['fold']} AUC {fold['roc_auc']:.3f} sens {fold['sensitivity']:.3f} "
            f"spec {fold['specificity']:.3f} re-acquired AUC {fold['reacquired_roc_auc']:.3f} "
            f"p95 |dp| {fold['reacquired_delta_p_p95']:.3f}")


def print_result(label: str, result: dict) -> None:
    """cross_validate's folds, one a line, then `label: summary_line` (the experiments' printout)."""
    for fold in result["folds"]:
        print(f"  {fold_line(fold)}", flush=True)
    print(f"{label}: {summary_line(result)}", flush=True)


def summary_line(result: dict) -> str:
    """cross_validate's mean +- sd of every figure on a line, then the folds' AUCs."""
    figures = ", ".join(f"{key} {value['mean']:.3f} +- {value['sd']:.3f}"
                        for key, value in result["summary"].items())
    folds = " / ".join(f"{fold['roc_auc']:.3f}" for fold in result["folds"])
    return f"{figures}; folds {folds}"
