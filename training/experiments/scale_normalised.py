"""Scale normalisation of the disc in the crop (card, experiment 48).

    PYTHONPATH=functions:. python training/experiments/scale_normalised.py --estimator runs/scale.npz \
        [--trunk-model models] training.train --data <ACRIMA> --augmented-copies 6 --model-dir ...

Every model input the run makes (training copies, val, test, the invariance suite, through the one
preprocessing function) is re-framed so that the crop shows the disc at ACRIMA's scale: the crop's
scale relative to ACRIMA's framing, s, is read from the frozen trunk's pooled features by
scale_probe.py's ridge regression; a crop s times tighter is shrunk to 1/s of the input's side on
black (its own inscribed circle kept), a looser one (s < 1) is cropped to its centre s.
"""

from __future__ import annotations

import argparse
import threading
from pathlib import Path

import numpy as np
from PIL import Image

from screening import preprocessing
from training.acquisition import crop
from training.experiments.run_target import run_target


def reframed(image: Image.Image, box: tuple[int, int, int, int], s: float, size: int, working_size: int) -> np.ndarray:
    """The content box at relative scale s: shrunk to 1/s of the side on black, or its centre s."""
    image = image.crop(box)
    if s < 1:
        image, s = crop(image, s), 1.0
    w, h = image.size
    scale = working_size / s / max(w, h)
    small = image.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BILINEAR,
                         reducing_gap=2.0)
    canvas = Image.new("RGB", (working_size, working_size))
    canvas.paste(small, ((working_size - small.width) // 2, (working_size - small.height) // 2))
    tensor = np.asarray(canvas.resize((size, size), Image.Resampling.BILINEAR), np.float32) / 255
    centre = (size - 1) / 2
    y, x = np.mgrid[0:size, 0:size]
    mask = np.clip(size / (2 * s) - np.hypot(x - centre, y - centre), 0, 1)[..., None]
    return (tensor * mask).astype(np.float32)


def install(estimator: Path, trunk_model: Path, low: float, high: float) -> None:
    import keras

    from training.features import pooled_model

    saved = np.load(estimator)
    coef, intercept, centre = saved["coef"], float(saved["intercept"]), float(saved["centre"])
    pooled = pooled_model(keras.models.load_model(trunk_model / "glaucoma.keras"))
    lock = threading.Lock()
    original = preprocessing._canonical

    def scale_of(tensor: np.ndarray) -> float:
        with lock:
            features = pooled(tensor[None], training=False).numpy()[0]
        return float(np.clip(np.exp(features @ coef + intercept - centre), low, high))

    def canonical(image, size, working_size, content=None):
        tensor, box, corner_lit = original(image, size, working_size, content)
        return reframed(image, box, scale_of(tensor), size, working_size), box, corner_lit

    preprocessing._canonical = canonical
    print(f"scale normalisation installed: {estimator}, s clamped to [{low}, {high}]", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--estimator", type=Path, required=True, help="scale_probe.py's saved regression")
    parser.add_argument("--trunk-model", type=Path, default=Path("models"),
                        help="a model folder whose glaucoma.keras has the frozen trunk the estimator read")
    parser.add_argument("--range", default="0.8,2.5", help="the re-framing's clamp on s")
    parser.add_argument("target", help="a module (training.train) or a script path")
    args, rest = parser.parse_known_args()
    low, high = (float(v) for v in args.range.split(","))
    install(args.estimator, args.trunk_model, low, high)
    run_target(args.target, rest)


if __name__ == "__main__":
    main()
