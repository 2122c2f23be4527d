"""The invariance suite: how far a prediction moves when the same photograph is
framed or taken differently (training/acquisition.py VARIANTS).

Every variant is applied to the decoded photograph at full resolution, encoded
as a client would send it, and goes through the serving preprocessing
(`preprocess_bytes`). Reported per variant: median, 95th percentile and maximum
of |p(variant) - p(photograph)|, ROC AUC, and sensitivity and specificity at the
model's threshold. Targets (issue 11): p95 |dp| <= 0.1, AUC within 0.03 of the
clean figure, sensitivity and specificity >= 0.80.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from screening.preprocessing import MODEL_INPUT_SIZE, decode_image, preprocess_bytes
from training.acquisition import EXTRA_VARIANTS, VARIANTS
from training.metrics import classification_report

MAX_DELTA_P95 = 0.1
MAX_AUC_DROP = 0.03
MIN_SENS_SPEC = 0.80


def variant_inputs(paths: list[Path], variant: Callable, size: int = MODEL_INPUT_SIZE) -> np.ndarray:
    """The model inputs of every photograph after one variant, through the serving path."""
    tensors = []
    for path in paths:
        photo = decode_image(Path(path).read_bytes(), min_side=None)[0]
        tensors.append(preprocess_bytes(variant(photo), size=size)[0])
    return np.stack(tensors)


def selected_variants(names: str) -> dict | None:
    """The variants a job's `invariance_variants` names ("" or "all": every one). Grey and colour
    shift always run: the card's grey-level and colour-shifted AUCs come from them."""
    if not names.strip() or names.strip() == "all":
        return None
    every = {**VARIANTS, **EXTRA_VARIANTS}
    wanted = {"grey", "colour_shift", *(n.strip() for n in names.split(",") if n.strip())}
    unknown = sorted(wanted - set(every))
    if unknown:
        raise ValueError(f"unknown invariance variants {unknown}; known: {sorted(every)}")
    return {name: variant for name, variant in every.items() if name in wanted}


def invariance_report(predict: Callable[[np.ndarray], np.ndarray], paths: list[Path], labels: np.ndarray,
                      clean_scores: np.ndarray, threshold: float, size: int = MODEL_INPUT_SIZE,
                      variants: dict | None = None, log=print) -> dict:
    """Per variant: |dp| statistics and the classification figures at `threshold`."""
    variants = {**VARIANTS, **EXTRA_VARIANTS} if variants is None else variants
    clean = classification_report(labels, clean_scores, threshold)
    report = {}
    for name, variant in variants.items():
        entry = variant_entry(labels, clean_scores, predict(variant_inputs(paths, variant, size)), threshold,
                              clean["roc_auc"], target=name in VARIANTS)
        report[name] = entry
        log(entry_line(name, entry))
    return report


def entry_line(name: str, entry: dict) -> str:
    return (f"  {name:22s} |dp| median {entry['delta_p_median']:.3f} p95 {entry['delta_p_p95']:.3f} "
            f"AUC {entry['roc_auc']:.3f} sens {entry['sensitivity']:.3f} spec {entry['specificity']:.3f}"
            f"{'' if entry['meets_targets'] else '  (misses a target)'}")


def variant_entry(labels: np.ndarray, clean_scores: np.ndarray, scores: np.ndarray, threshold: float,
                  clean_auc: float, target: bool = True) -> dict:
    """One variant's line of the report: |dp| against the clean scores, the figures at `threshold`,
    and whether it meets the targets."""
    delta = np.abs(scores - clean_scores)
    figures = classification_report(labels, scores, threshold)
    entry = {
        "delta_p_median": float(np.median(delta)),
        "delta_p_p95": float(np.percentile(delta, 95)),
        "delta_p_max": float(delta.max()),
        "roc_auc": figures["roc_auc"],
        "sensitivity": figures["sensitivity"],
        "specificity": figures["specificity"],
        "target": target,
    }
    entry["meets_targets"] = bool(
        entry["delta_p_p95"] <= MAX_DELTA_P95
        and not (clean_auc - entry["roc_auc"] > MAX_AUC_DROP)
        and entry["sensitivity"] >= MIN_SENS_SPEC and entry["specificity"] >= MIN_SENS_SPEC)
    return entry
