"""Score any saved model on any labelled folder (`{normal,glaucoma}/` images).

    python -m training.evaluate --model models --data path/to/other-hospital
    python -m training.evaluate --model runs/x/glaucoma.keras --data ... --threshold 0.4
    python -m training.evaluate --model models --data ... --variant colour_shift
    python -m training.evaluate --model models --data samples/acrima --per-image

`--model` is a model folder (glaucoma.tflite + model.json, run by LiteRT as in
serving) or a .keras file. Prints the same metrics as training, as JSON, so a
model can be checked on data it never saw.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

from training.data import list_labelled_folder, load_images
from training.metrics import classification_report
from training.acquisition import EXTRA_VARIANTS, VARIANTS
from training.robustness import variant_inputs

ALL_VARIANTS = {**VARIANTS, **EXTRA_VARIANTS}


def score(model_path: Path, images: np.ndarray, batch_size: int = 32,
          test_time_augmentation: str | None = None) -> tuple[np.ndarray, float | None]:
    """Probabilities from a .keras file or a serving model folder, and its own threshold
    (`test_time_augmentation`: a serving folder scored otherwise than its card says)."""
    card_path = (model_path if model_path.is_dir() else model_path.parent) / "model.json"
    threshold = json.loads(card_path.read_text())["threshold"] if card_path.is_file() else None
    if model_path.suffix == ".keras":
        import keras

        model = keras.models.load_model(model_path)
        return model.predict(images, batch_size=batch_size, verbose=0)[:, 0], threshold
    from screening.inference import GlaucomaModel

    served = GlaucomaModel(model_path if model_path.is_dir() else model_path.parent,
                           test_time_augmentation=test_time_augmentation)
    scores = [served.probabilities_and_cams(images[i:i + batch_size])[0]
              for i in range(0, len(images), batch_size)]
    return np.concatenate(scores), served.threshold


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True, help="a folder with normal/ and glaucoma/")
    parser.add_argument("--threshold", type=float, default=None,
                        help="decision threshold (default: the model card's)")
    parser.add_argument("--variant", choices=["as-is", *ALL_VARIANTS], default="as-is",
                        help="score a re-framed or re-acquired variant of the photographs (the invariance suite)")
    parser.add_argument("--per-image", action="store_true",
                        help="list each image's probability too (which of your photographs it gets wrong)")
    args = parser.parse_args(argv)
    loaded = load_images(list_labelled_folder(args.data))
    images = (loaded.images if args.variant == "as-is"
              else variant_inputs(loaded.paths, ALL_VARIANTS[args.variant]))
    scores, card_threshold = score(args.model, images)
    threshold = args.threshold if args.threshold is not None else card_threshold
    if threshold is None:
        parser.error("no model.json beside the model: pass --threshold")
    report = classification_report(loaded.labels, scores, threshold)
    report["skipped"] = [{"file": str(p), "reason": r} for p, r in loaded.skipped]
    report["model"] = str(args.model)
    report["variant"] = args.variant
    if args.per_image:
        names = ("normal", "glaucoma")
        report["images"] = [{"file": str(Path(path).relative_to(args.data)), "truth": names[int(label)],
                             "probability": round(float(p), 3)}
                            for path, label, p in zip(loaded.paths, loaded.labels, scores)]
    clean = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in report.items()}
    json.dump(clean, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
