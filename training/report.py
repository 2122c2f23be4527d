"""Print the model card's tables from a training report (metrics.json), as Markdown.

    python -m training.report models/report/metrics.json

Every figure in models/MODEL_CARD.md's result tables comes from this command.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _f(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def tables(report: dict) -> str:
    split = report["reported_on"]
    clean, val = report[split], report["val"]
    calibration = report["calibration"]
    lines = [f"threshold {report['threshold']:.3f} ({report['threshold_rule']})", "",
             f"| metric | {split} | val |", "|---|---|---|"]
    for key in ("roc_auc", "sensitivity", "specificity", "precision", "accuracy", "f1",
                "sensitivity_at_95_specificity"):
        lines.append(f"| {key} | {_f(clean[key])} | {_f(val[key])} |")
    cm = clean["confusion_matrix"]
    lines.append(f"| confusion (tn, fp, fn, tp) | {cm['tn']}, {cm['fp']}, {cm['fn']}, {cm['tp']} | |")
    lines.append(f"| ECE (10 bins) | {_f(calibration.get(f'ece_{split}'))} | {_f(calibration.get('ece_val'))} |")
    lines += ["", "| variant | median \\|Δp\\| | p95 \\|Δp\\| | max \\|Δp\\| | AUC | sens. | spec. | targets |",
              "|---|---|---|---|---|---|---|---|"]
    for name, v in (report.get("invariance") or {}).items():
        verdict = ("met" if v["meets_targets"] else "missed") if v["target"] else "(not a target)"
        lines.append(f"| {name} | {_f(v['delta_p_median'])} | {_f(v['delta_p_p95'])} | {_f(v['delta_p_max'])} "
                     f"| {_f(v['roc_auc'])} | {_f(v['sensitivity'])} | {_f(v['specificity'])} | {verdict} |")
    cv = report.get("cross_validation")
    if cv:
        lines += ["", f"5-fold cross-validation, folds grouped by {cv['grouping']} (mean ± sd):", "",
                  "| figure | mean ± sd |", "|---|---|"]
        for key, value in cv["summary"].items():
            lines.append(f"| {key} | {value['mean']:.3f} ± {value['sd']:.3f} |")
        lines += ["", "| fold | n (glaucoma) | AUC | sens. | spec. | ECE | width bins in the test fold |",
                  "|---|---|---|---|---|---|---|"]
        for f in cv["folds"]:
            lines.append(f"| {f['fold']} | {f['n_test']} ({f['n_test_glaucoma']}) | {_f(f['roc_auc'])} "
                         f"| {_f(f['sensitivity'])} | {_f(f['specificity'])} | {_f(f['ece'])} "
                         f"| {', '.join(str(b) for b in f['width_bins_test'])} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    path = Path(argv[0] if argv else "models/report/metrics.json")
    print(tables(json.loads(path.read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
