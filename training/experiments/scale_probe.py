"""Can the disc's scale in the crop be read from the trunk's features? (card, experiment 48)

    ACRIMA_DIR=... PYTHONPATH=functions:. python training/experiments/scale_probe.py MODEL_DIR [ESTIMATOR.npz]

First, why it is learnt: row 22's blob measure (and a variant thresholded at a share of its peak)
on the test split's photographs and their 50 % centre crops. Then a ridge regression on the
model's pooled trunk features (the head's input), fitted on the train split's photographs cropped
to a known share f of each side (50-100 %, random offsets, half of them also randomly re-acquired),
predicts log(1/f): how much tighter than ACRIMA's own framing a crop is. It is scored on the test
split's centre crops, clean and re-acquired, and saved for scale_normalised.py, which re-frames
every model input to ACRIMA's scale (the issue's "scale normalisation").
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from screening.config import BUNDLED_MODEL_DIR
from screening.preprocessing import canonical_input
from training.acquisition import crop, random_acquisition
from training.data import read_splits_csv
from training.features import load_photos, pooled_model


def peak_relative_blob(image, level: float = 0.8, side: int = 128) -> float:
    """The blob measure with its threshold at a share of the peak, not half-way to the median
    (which a tighter crop raises): equivalent diameter as a share of the side."""
    from PIL import Image
    from scipy import ndimage

    from screening.disc import gaussian_blurs
    from screening.preprocessing import LUMA_WEIGHTS

    small = image.convert("RGB").resize((side, side), Image.Resampling.BILINEAR)
    (smooth,) = gaussian_blurs(np.asarray(small, np.float32) @ np.asarray(LUMA_WEIGHTS, np.float32) / 255, [2.0])
    c = side // 4
    y, x = np.unravel_index(np.argmax(smooth[c:-c, c:-c]), (side - 2 * c, side - 2 * c))
    labels, _ = ndimage.label(smooth >= level * smooth[y + c, x + c])
    return float(2 * np.sqrt((labels == labels[y + c, x + c]).sum() / np.pi) / side)


def blob_measures(photos) -> None:
    from training.disc_framing import blob_diameter

    for name, measure in (("row 22's blob", blob_diameter), ("peak-relative blob", peak_relative_blob)):
        whole = np.array([measure(p) for p in photos])
        half = np.array([measure(crop(p, 0.5)) for p in photos])
        print(f"{name}: a 50 % crop reads {np.median(half / whole):.2f}x (expected 2x; p5-p95"
              f" {np.percentile(half / whole, 5):.2f}-{np.percentile(half / whole, 95):.2f}); photographs"
              f" as they are p5-p95 {np.percentile(whole, 5):.3f}-{np.percentile(whole, 95):.3f} of the side")


def main() -> int:
    import keras
    from sklearn.linear_model import RidgeCV

    model_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else BUNDLED_MODEL_DIR
    save_to = Path(sys.argv[2]) if len(sys.argv) > 2 else None
    pooled = pooled_model(keras.models.load_model(model_dir / "glaucoma.keras"))
    splits = read_splits_csv(Path(os.environ["ACRIMA_DIR"]))
    train = load_photos(list(splits["train"].paths))
    test = load_photos(list(splits["test"].paths))
    blob_measures(test)
    rng = np.random.default_rng(0)
    xs, ys = [], []
    for copy in range(4):
        batch = []
        for photo in train:
            f = float(np.exp(rng.uniform(np.log(0.5), 0.0)))
            image = crop(photo, f, offset=tuple(rng.uniform(0.3, 0.7, 2)))
            if rng.random() < 0.5:
                image = random_acquisition(image, rng)
            batch.append(canonical_input(image))
            ys.append(np.log(1 / f))
        xs.append(pooled.predict(np.stack(batch), batch_size=32, verbose=0))
    x, y = np.concatenate(xs), np.array(ys)
    regression = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(x, y)
    print(f"fitted on {len(y)} crops, alpha {regression.alpha_:.3g}, train R2 {regression.score(x, y):.3f}")

    def predict(images) -> np.ndarray:
        return regression.predict(pooled.predict(np.stack([canonical_input(i) for i in images]),
                                                 batch_size=32, verbose=0))

    centre = float(np.median(predict(train)))  # ACRIMA's own framing: relative scale 1
    print(f"train photographs as they are: median predicted 1/f {np.exp(centre):.3f}")
    if save_to:
        np.savez(save_to, coef=regression.coef_.astype(np.float32), intercept=regression.intercept_,
                 centre=centre)
        print(f"saved {save_to}")
    base = predict(test)
    labels = np.asarray(splits["test"].labels)
    from sklearn.metrics import roc_auc_score
    print("is the predicted scale a label cue? AUC for glaucoma on the test photographs"
          f" {roc_auc_score(labels, base):.3f}")
    print(f"test photographs as they are: predicted 1/f median {np.exp(np.median(base)):.3f},"
          f" p5-p95 {np.exp(np.percentile(base, 5)):.3f}-{np.exp(np.percentile(base, 95)):.3f}")
    for f in (0.9, 0.8, 0.7, 0.6, 0.5):
        for name, acquired in (("clean", False), ("re-acquired", True)):
            r = np.random.default_rng(1)
            images = [crop(p, f) for p in test]
            if acquired:
                images = [random_acquisition(i, r) for i in images]
            pred = predict(images)
            err = pred - np.log(1 / f)
            print(f"crop {f:.0%} {name:11s}: predicted 1/f median {np.exp(np.median(pred)):.3f} (true {1 / f:.3f}),"
                  f" error in log sd {err.std():.3f}, |error| p95 {np.percentile(np.abs(err), 95):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
