"""How the suite's variants move the served logit, per class, and whether a sharpness term can undo it.

    ACRIMA_DIR=/path/to/acrima PYTHONPATH=functions:. python training/experiments/blur_collapse.py

Why: blur is the suite's weakest variant (specificity 0.630 under sigma 1.5), and rows 41, 60, 64
and 65 (more blurred copies, sharpness erased, rows balanced by sharpness, a variance penalty) did
not lift it. If blur added a bias (every photograph towards "glaucoma", in proportion to the
sharpness it takes away), a logit corrected by the view's own sharpness would undo it: the
correction's slope is estimated within each training photograph, across its re-acquired copies
(whose label is the photograph's), so it cannot learn ACRIMA's between-photograph sharpness cue.
If blur removes information instead, both classes move towards the middle and no per-image shift
can undo it. Prints each variant's median logit change per class, the within-photograph slope,
and the suite with the corrected logit (Platt scaling and threshold refitted on val as served).
Uses head_suite.py's cached features and caches each variant's sharpness in runs/.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from training.acquisition import EXTRA_VARIANTS, VARIANTS  # noqa: E402
from training.experiments.erase_sharpness_cv import view_sharpness  # noqa: E402
from training.experiments.head_suite import MIN_SENSITIVITY, served_head, suite_setup  # noqa: E402
from training.experiments.sharpness_cv import sharpness  # noqa: E402
from training.experiments.tta_cv import cache_path  # noqa: E402
from training.head import LinearHead, expected_calibration_error, platt_scaling  # noqa: E402
from training.metrics import choose_threshold, classification_report  # noqa: E402
from training.robustness import variant_entry, variant_inputs  # noqa: E402


def variant_sharpness(test_paths: list[Path]) -> dict[str, np.ndarray]:
    """log sharpness of each suite variant's model inputs of the test split (a mirror image's is the same)."""
    cache = cache_path(6, adapted=True).parent / "head_suite_variant_sharpness.npz"
    if cache.exists():
        return dict(np.load(cache))
    values = {name: np.log(sharpness(variant_inputs(test_paths, variant)))
              for name, variant in {**VARIANTS, **EXTRA_VARIANTS}.items()}
    np.savez(cache, **values)
    return values


def within_photo_slope(logits: np.ndarray, log_sharpness: np.ndarray) -> float:
    """Least-squares slope of logit on log sharpness across each photograph's views (views, N)."""
    dl, ds = logits - logits.mean(0), log_sharpness - log_sharpness.mean(0)
    return float((dl * ds).sum() / (ds ** 2).sum())


def main() -> int:
    acrima, bank, mirror, labels, _, splits, train, val, test, variants = suite_setup()
    test_paths = list(splits["test"].paths)
    sharp = np.log(view_sharpness(acrima))  # (views, N), the bank's draws
    sharp_variants = variant_sharpness(test_paths)
    head, _ = served_head(bank, mirror, labels, train, val)
    y = labels[test]
    clean = head.logits_over_mirror(bank[0, test], mirror[0, test])
    print("variant: median logit change (p90) for normals | glaucoma; median change of log sharpness")
    for name, (view, mirrored) in variants.items():
        change = head.logits_over_mirror(view, mirrored) - clean
        per_class = " | ".join(f"{np.median(change[y == c]):+.2f} ({np.quantile(change[y == c], 0.9):+.2f})"
                               for c in (0, 1))
        print(f"  {name:20s} {per_class}; {np.median(sharp_variants[name] - sharp[0, test]):+.2f}")

    logits = np.stack([head.logits_over_mirror(bank[v, train], mirror[v, train]) for v in range(len(bank))])
    slope = within_photo_slope(logits, sharp[:, train])
    per_class = [within_photo_slope(logits[:, labels[train] == c], sharp[:, train][:, labels[train] == c])
                 for c in (0, 1)]
    print(f"within-photograph slope of the logit on log sharpness: {slope:+.3f} "
          f"(normals {per_class[0]:+.3f}, glaucoma {per_class[1]:+.3f})")

    reference = float(np.median(sharp[0, train]))
    for arm, k in (("served", 0.0), ("sharpness-corrected", slope)):
        def logit(view, mirrored, s):
            return head.logits_over_mirror(view, mirrored) - k * (s - reference)

        # Platt scaling again on the corrected logit (a no-op for the served arm, whose head is calibrated)
        platt = platt_scaling(LinearHead(np.ones(1), 0.0),
                              logit(bank[0, val], mirror[0, val], sharp[0, val])[:, None], labels[val])

        def probability(view, mirrored, s):
            return platt.probabilities(logit(view, mirrored, s)[:, None])

        val_scores = np.concatenate([probability(bank[v, val], mirror[v, val], sharp[v, val])
                                     for v in range(len(bank))])
        threshold = choose_threshold(np.tile(labels[val], len(bank)), val_scores, MIN_SENSITIVITY)
        scores = probability(bank[0, test], mirror[0, test], sharp[0, test])
        report = classification_report(y, scores, threshold)
        entries = {name: variant_entry(y, scores, probability(view, mirrored, sharp_variants[name]),
                                       threshold, report["roc_auc"], target=name in VARIANTS)
                   for name, (view, mirrored) in variants.items()}
        targets = [e for name, e in entries.items() if name in VARIANTS]
        print(f"{arm}: threshold {threshold:.3f}, test AUC {report['roc_auc']:.3f} "
              f"sens {report['sensitivity']:.3f} spec {report['specificity']:.3f} "
              f"ECE {expected_calibration_error(y, scores):.3f}; suite median p95 |dp| "
              f"{np.median([e['delta_p_p95'] for e in targets]):.3f}, spec >= 0.8 under "
              f"{sum(e['specificity'] >= 0.8 for e in targets)} of {len(targets)}, "
              f"blur spec {entries['blur_1.5']['specificity']:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
