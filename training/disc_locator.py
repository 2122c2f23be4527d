"""Train and cross-validate the optic-disc locator (screening/disc.py) on CSDI's expert disc boxes.

    python -m training.disc_locator --data /path/to/csdi --acrima /path/to/acrima

Per-pixel logistic regression: positives are the pixels within a quarter disc diameter of the
expert box's centre, negatives a sample of the fundus farther than half a diameter. Reported:
patient-grouped 5-fold CV share of images with a visible disc whose predicted centre lies within
half a disc diameter of the expert centre; the score threshold below which no disc is reported
(the lowest CV score of a visible disc's correct hit, less a margin); and ACRIMA's disc-to-crop
ratio, measured with the same locator's features on ACRIMA's crops (see measure_acrima_framing).
Writes models/disc_locator/locator.json and report.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from screening import disc
from training.cataract import DEFAULT_DATA, read_csdi

POSITIVE_RADIUS = 0.25
NEGATIVE_RADIUS = 0.5
NEGATIVES_PER_IMAGE = 300


def expert_disc(row: dict) -> tuple[float, float, float]:
    x1, y1, x2, y2 = (float(row[k]) for k in ("disc_x1", "disc_y1", "disc_x2", "disc_y2"))
    return (x1 + x2) / 2, (y1 + y2) / 2, ((x2 - x1) + (y2 - y1)) / 2


def disc_to_fundus(rows: list[dict]) -> float:
    ratios = []
    for r in rows:
        if r["optic_disc_visible"] != "yes":
            continue
        fx1, fy1, fx2, fy2 = (float(r[k]) for k in ("fundus_x1", "fundus_y1", "fundus_x2", "fundus_y2"))
        ratios.append(expert_disc(r)[2] / max(fx2 - fx1, fy2 - fy1))
    return float(np.median(ratios))


def samples(items: list, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for (stack, inner, scale, _), (cx, cy, d) in items:
        yy, xx = np.mgrid[:inner.shape[0], :inner.shape[1]]
        dist = np.hypot(xx + 0.5 - cx / scale, yy + 0.5 - cy / scale)
        pos = np.flatnonzero((inner & (dist <= POSITIVE_RADIUS * d / scale)).ravel())
        neg = np.flatnonzero((inner & (dist > NEGATIVE_RADIUS * d / scale)).ravel())
        neg = rng.choice(neg, min(NEGATIVES_PER_IMAGE, len(neg)), replace=False)
        flat = stack.reshape(-1, stack.shape[-1])
        xs += [flat[pos], flat[neg]]
        ys += [np.ones(len(pos)), np.zeros(len(neg))]
    return np.concatenate(xs), np.concatenate(ys)


def fit(items: list, seed: int = 0):
    from sklearn.linear_model import LogisticRegression

    x, y = samples(items, np.random.default_rng(seed))
    return LogisticRegression(C=1.0, max_iter=3000, class_weight="balanced").fit(x, y)


def make_locator(clf, ratio: float, min_score: float, disc_to_crop: float) -> disc.Locator:
    return disc.Locator(clf.coef_[0].astype(np.float32), float(clf.intercept_[0]), min_score, ratio, disc_to_crop)


def main(argv: list[str] | None = None) -> int:
    from sklearn.model_selection import GroupKFold

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, required=DEFAULT_DATA is None)
    parser.add_argument("--out", type=Path, default=Path("models") / "disc_locator")
    parser.add_argument("--disc-to-crop", type=float, default=None,
                        help="ACRIMA's disc diameter / crop side (default: keep the committed value)")
    args = parser.parse_args(argv)
    rows = read_csdi(args.data)
    ratio = disc_to_fundus(rows)
    images = [Image.open(args.data / r["file"]).convert("RGB") for r in rows]
    feats = [disc.features(im, ratio) for im in images]
    visible = np.array([r["optic_disc_visible"] == "yes" and f is not None for r, f in zip(rows, feats)])
    groups = np.array([r["patient"] for r in rows])
    hits, hit_scores, invisible_scores, misses = [], [], [], []
    for train_idx, test_idx in GroupKFold(5, shuffle=True, random_state=0).split(rows, groups=groups):
        clf = fit([(feats[i], expert_disc(rows[i])) for i in train_idx if visible[i]])
        locator = make_locator(clf, ratio, -np.inf, 1.0)
        for i in test_idx:
            found = locator.locate(images[i])
            if not visible[i]:
                invisible_scores.append(found.score if found else None)
                continue
            cx, cy, d = expert_disc(rows[i])
            hit = bool(np.hypot(found.x - cx, found.y - cy) <= d / 2)
            hits.append(hit)
            (hit_scores if hit else misses).append(round(found.score, 3))
    min_score = float(np.min(hit_scores)) - 1.0
    clf = fit([(feats[i], expert_disc(rows[i])) for i in range(len(rows)) if visible[i]])
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    previous = json.loads((out / disc.LOCATOR_FILE).read_text()) if (out / disc.LOCATOR_FILE).is_file() else {}
    disc_to_crop = args.disc_to_crop or previous.get("disc_to_crop", 0.4)
    card = {"weights": [float(w) for w in clf.coef_[0]], "bias": float(clf.intercept_[0]),
            "min_score": min_score, "disc_to_fundus": ratio, "disc_to_crop": disc_to_crop,
            "work_side": disc.WORK_SIDE, "data": "CSDI disc boxes (CC BY-NC 4.0)"}
    (out / disc.LOCATOR_FILE).write_text(json.dumps(card, indent=2) + "\n")
    report = {"cv_folds": 5, "grouped_by": "patient", "images_with_visible_disc": len(hits),
              "within_half_disc_diameter": float(np.mean(hits)), "missed_scores": misses,
              "invisible_disc_scores": invisible_scores, "min_score": min_score,
              "disc_to_fundus": ratio, "disc_to_crop": disc_to_crop}
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    json.dump(report, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
