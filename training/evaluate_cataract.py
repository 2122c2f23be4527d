"""Score the cataract model on any folder of full-field photographs with expert severities.

    python -m training.evaluate_cataract --model models/cataract --data path/to/folder [--csv NAME]

The folder holds the images and a CSV with columns `file` (relative to the folder) and `severity`
(0-10): `annotations.csv` by default (CSDI's layout works as is). Runs the serving model (LiteRT)
on the serving preprocessing and prints, as JSON: referable AUC (severity >= 4 vs <= 2.5),
sensitivity/specificity at the card's threshold, Spearman of the severity estimate, its MAE.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

from screening import framing
from screening.inference import GlaucomaModel
from screening.preprocessing import ImageRejected, preprocess_bytes
from training.cataract import figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=Path("models") / "cataract")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--csv", default="annotations.csv")
    args = parser.parse_args(argv)
    model = GlaucomaModel(args.model)
    probabilities, severities, skipped = [], [], []
    for row in csv.DictReader((args.data / args.csv).open()):
        try:
            tensor, _ = preprocess_bytes((args.data / row["file"]).read_bytes(), size=model.card.input_size)
        except (OSError, ImageRejected) as exc:
            skipped.append({"file": row["file"], "reason": getattr(exc, "reason", type(exc).__name__)})
            continue
        probabilities.append(model.predict(tensor[None])[0].probability)
        severities.append(float(row["severity"]))
    p = np.array(probabilities)
    estimate = np.array([framing.severity(float(v), model.card.extras) for v in p])
    report = figures(np.array(severities), estimate, p, model.threshold)
    report.update(model=str(args.model), model_version=model.version, skipped=skipped)
    json.dump(report, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
