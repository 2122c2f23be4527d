"""Which second view should the served model's second pass take? The mirror image (served, row 52)
against the mirror image also zoomed in, rotated or blurred, on the committed model's weights.

    ACRIMA_DIR=/path/to/acrima PYTHONPATH=functions:. python training/experiments/tta_views.py \
        [--zoom 0.9] [--degrees 10] [--blur 1.0]

Why: the budget allows two trunk passes a photograph, and the suite's long tails are crops, zoom,
rotation and blur. A second view that is the mirror image *and* a small zoom, rotation or blur
averages the logit over that change too, at the same cost (a resampling or low-pass of the 224-px
model input, well under a millisecond). The head was fitted on re-acquired copies that hold such
crops, rotations and blur, so the second view stays inside what it has seen. Each arm's threshold is
chosen on val's clean photographs (sensitivity >= 0.90), so the arms are compared on equal terms
(the served model's own threshold also comes from val's re-acquired copies); test AUC and
sensitivity at 95 % specificity need no threshold. The suite's variant inputs are made once and
scored by every arm."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
from scipy.ndimage import affine_transform, gaussian_filter
from sklearn.metrics import roc_auc_score

from screening.inference import GlaucomaModel, mean_over_mirror
from screening.preprocessing import circle_mask
from training import data as data_mod
from training.acquisition import VARIANTS
from training.metrics import choose_threshold, classification_report
from training.robustness import MAX_AUC_DROP, MAX_DELTA_P95, MIN_SENS_SPEC, variant_inputs

ROOT = Path(__file__).resolve().parents[2]


def resampled(inputs: np.ndarray, scale: float = 1.0, degrees: float = 0.0) -> np.ndarray:
    """Each (S, S, 3) input zoomed by 1/scale and rotated about its centre, masked to the circle again."""
    size = inputs.shape[1]
    theta = np.deg2rad(degrees)
    matrix = scale * np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    centre = np.array([(size - 1) / 2] * 2)
    offset = centre - matrix @ centre
    out = np.empty_like(inputs)
    for i, image in enumerate(inputs):
        for ch in range(3):
            out[i, :, :, ch] = affine_transform(image[:, :, ch], matrix, offset=offset, order=1)
    return (out * circle_mask(size)).astype(np.float32)


def blurred(inputs: np.ndarray, sigma: float) -> np.ndarray:
    """Each input low-passed (Gaussian, sigma px), masked to the circle again."""
    out = gaussian_filter(inputs, sigma=(0, sigma, sigma, 0))
    return (out * circle_mask(inputs.shape[1])).astype(np.float32)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--zoom", type=float, default=0.9,
                        help="the second view keeps this share of the side")
    parser.add_argument("--degrees", type=float, default=10.0)
    parser.add_argument("--blur", type=float, default=1.0, help="sigma (px at 224) of the blurred arm")
    args = parser.parse_args()
    splits = data_mod.read_splits_csv(Path(os.environ["ACRIMA_DIR"]))
    model = GlaucomaModel(ROOT / "models", num_threads=1, test_time_augmentation="none")

    def one(inputs: np.ndarray) -> np.ndarray:
        return model.probabilities_and_cams(inputs)[0]

    arms = {
        "mirror (served)": lambda x: x[:, :, ::-1],
        f"mirror + zoom {args.zoom:g}": lambda x: resampled(x[:, :, ::-1], scale=args.zoom),
        f"mirror + rotate {args.degrees:g}": lambda x: resampled(x[:, :, ::-1], degrees=args.degrees),
        "mirror + zoom + rotate": lambda x: resampled(x[:, :, ::-1], scale=args.zoom, degrees=args.degrees),
        f"mirror + blur {args.blur:g}": lambda x: blurred(x[:, :, ::-1], args.blur),
    }
    val, test = splits["val"], splits["test"]
    val_y, test_y = np.array(val.labels), np.array(test.labels)
    val_inputs, test_inputs = data_mod.load_images(val).images, data_mod.load_images(test).images
    variants = {name: variant_inputs(test.paths, variant) for name, variant in VARIANTS.items()}
    print(f"{len(variants)} target variants of {len(test_y)} test photographs made", flush=True)
    for arm, second in arms.items():
        def predict(inputs: np.ndarray, second=second) -> np.ndarray:
            return mean_over_mirror(one(inputs), one(second(inputs)))

        threshold = choose_threshold(val_y, predict(val_inputs))
        clean_scores = predict(test_inputs)
        clean = classification_report(test_y, clean_scores, threshold)
        p95, met, spec_ok, lines = [], 0, 0, []
        for name, inputs in variants.items():
            scores = predict(inputs)
            figures = classification_report(test_y, scores, threshold)
            delta = float(np.percentile(np.abs(scores - clean_scores), 95))
            p95.append(delta)
            spec_ok += figures["specificity"] >= MIN_SENS_SPEC
            met += (delta <= MAX_DELTA_P95 and clean["roc_auc"] - figures["roc_auc"] <= MAX_AUC_DROP
                    and min(figures["sensitivity"], figures["specificity"]) >= MIN_SENS_SPEC)
            lines.append(f"{name} {delta:.3f}/{figures['specificity']:.2f}")
        auc = roc_auc_score(test_y, clean_scores)
        print(f"{arm}: threshold {threshold:.3f}; test AUC {auc:.3f} sens "
              f"{clean['sensitivity']:.3f} spec {clean['specificity']:.3f} sens@95spec "
              f"{clean['sensitivity_at_95_specificity']:.3f}; median p95 |dp| {np.median(p95):.3f}, "
              f"spec >= 0.80 under {spec_ok} of {len(variants)}, all targets under {met}", flush=True)
        print("   p95 |dp| / spec: " + ", ".join(lines), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
