"""Do the service's quality flags mark the answers the model gets wrong? Every ACRIMA photograph,
as sent and under the suite's blur and JPEG q30 variants, through the serving preprocessing and
quality gate, against the served recipe's out-of-fold answers (cv_suite.py, card row 74).

    ACRIMA_DIR=/path/to/acrima PYTHONPATH=functions:. python training/experiments/flagged_errors.py \
        [--alpha 0.01] [--variants blur_1.5,jpeg_q30]

Why: blur σ 1.5 is the variant where specificity stays below 0.80 (0.563 out of fold), and the
model card tells a clinic not to act on a "glaucoma" answer that carries the `blurred` or
`low_resolution` flag without review. Whether that advice catches the false positives is
measurable: per variant, the share of photographs refused or flagged, specificity and
sensitivity among the answers with no flag and among the flagged ones, and the share of false
positives that carry a flag; then, for a range of bounds on the `detail` measure that the `blurred`
flag reads (served: 0.003), what a stricter flag would catch. The quality measures take about a
minute; the out-of-fold answers come from cv_suite.py's cached features.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from screening.preprocessing import ImageRejected, decode_image, preprocess_bytes  # noqa: E402
from screening.quality import assess  # noqa: E402
from training.acquisition import VARIANTS  # noqa: E402
from training.experiments.cv_suite import all_photographs, out_of_fold  # noqa: E402
from training.experiments.reframing_penalty import reframing_views  # noqa: E402

AS_SENT = "as sent"
DETAIL_BOUNDS = (0.003, 0.004, 0.005, 0.006, 0.007, 0.008)  # the served flag's bound is 0.003


def verdicts(paths: list[Path], variant) -> tuple[list[str | list[str]], np.ndarray]:
    """Per photograph: the quality gate's rejection reason (a str) or its flags (a list), and its
    `detail` measure (what the `blurred` flag reads; NaN where preprocessing refused it)."""
    out, detail = [], []
    for path in paths:
        data = Path(path).read_bytes()
        if variant is not None:
            data = variant(decode_image(data, min_side=None)[0])
        try:
            report = assess(*preprocess_bytes(data))
        except ImageRejected as exc:
            out.append(exc.reason)
            detail.append(np.nan)
            continue
        out.append(report.rejection or report.flags)
        detail.append(report.measures["detail"])
    return out, np.array(detail)


def detail_sweep(labels: np.ndarray, called: np.ndarray, detail: np.ndarray) -> list[str]:
    """Were the `blurred` flag's bound higher: how many photographs it would flag, how many false
    positives it would catch, and specificity among the rest."""
    false_positive = called & (labels == 0)
    lines = []
    for bound in DETAIL_BOUNDS:
        low = detail < bound
        rest = (labels == 0) & ~low
        lines.append(f"    detail < {bound:.3f}: flags {low.mean():.3f}, false positives caught "
                     f"{(false_positive & low).sum()} of {false_positive.sum()}, "
                     f"specificity of the rest {(~called[rest]).mean():.3f} ({rest.sum()})")
    return lines


def flag_line(name: str, labels: np.ndarray, scores: np.ndarray, thresholds: np.ndarray,
              found: list[str | list[str]]) -> str:
    rejected = np.array([isinstance(v, str) for v in found])
    flagged = np.array([isinstance(v, list) and bool(v) for v in found])
    clean = ~rejected & ~flagged
    called = scores >= thresholds
    normal, glaucoma = labels == 0, labels == 1

    def spec_sens(keep: np.ndarray) -> str:
        n, g = keep & normal, keep & glaucoma
        spec = f"{(~called[n]).mean():.3f} ({n.sum()})" if n.any() else "– (0)"
        sens = f"{called[g].mean():.3f} ({g.sum()})" if g.any() else "– (0)"
        return f"spec {spec}, sens {sens}"

    false_positive = called & normal
    counts: dict[str, int] = {}
    for v in found:
        for flag in ([v] if isinstance(v, str) else v):
            counts[flag] = counts.get(flag, 0) + 1
    return (f"{name}: refused {rejected.mean():.3f}, flagged {flagged.mean():.3f} "
            f"({', '.join(f'{k} {c}' for k, c in sorted(counts.items()))}); "
            f"no flag: {spec_sens(clean)}; flagged: {spec_sens(flagged)}; "
            f"false positives flagged or refused {(false_positive & ~clean).sum()} of {false_positive.sum()}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alpha", type=float, default=0.01)
    parser.add_argument("--variants", default="blur_1.5,jpeg_q30")
    args = parser.parse_args()
    acrima = Path(os.environ["ACRIMA_DIR"])
    chosen = args.variants.split(",")
    bank, mirror, labels, widths, paths, variants = all_photographs(acrima, chosen)
    _, oof = out_of_fold(bank, mirror, labels, widths, variants, args.alpha,
                         reframing_views(acrima, bank[0]))
    for name in [AS_SENT] + chosen:
        found, detail = verdicts(paths, None if name == AS_SENT else VARIANTS[name])
        scores = oof["clean" if name == AS_SENT else name]
        print(flag_line(name, labels, scores, oof["threshold"], found), flush=True)
        print("\n".join(detail_sweep(labels, scores >= oof["threshold"], detail)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
