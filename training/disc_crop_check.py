"""Does the crop step change glaucoma screening of disc-centred crops? ACRIMA's test split screened
as given vs through the serving framing step (screening/framing.py: a crop is recognised and not
cropped again; anything it would crop or refuse is counted).

    python -m training.disc_crop_check --acrima /path/to/acrima
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from screening import framing
from screening.inference import GlaucomaModel
from screening.preprocessing import ImageRejected, preprocess_bytes


def main(argv: list[str] | None = None) -> int:
    from sklearn.metrics import roc_auc_score

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--acrima", type=Path, required=True)
    parser.add_argument("--model", type=Path, default=Path("models"))
    args = parser.parse_args(argv)
    model = GlaucomaModel(args.model)
    rows = [r for r in csv.DictReader((args.acrima / "splits.csv").open()) if r["split"] == "test"]
    given, framed, labels, outcomes = [], [], [], Counter()
    for r in rows:
        data = (args.acrima / r["path"]).read_bytes()
        tensor, info = preprocess_bytes(data, size=model.card.input_size)
        p_given = model.predict(tensor[None])[0].probability
        try:
            result = framing.frame(tensor, info, data, "", model.card.input_size, 40_000_000, 20 << 20)
            outcomes["cropped" if result.fields.get("cropped") else "kept as given"] += 1
            p_framed = model.predict(result.tensor[None])[0].probability
        except ImageRejected as exc:
            outcomes[f"rejected: {exc.reason}"] += 1
            p_framed = float("nan")
        given.append(p_given)
        framed.append(p_framed)
        labels.append(int(r["label"] == "glaucoma"))
    given, framed, labels = np.array(given), np.array(framed), np.array(labels)
    kept = ~np.isnan(framed)
    report = {"n": len(rows), "outcomes": dict(outcomes),
              "auc_as_given": float(roc_auc_score(labels, given)),
              "auc_through_framing_step": float(roc_auc_score(labels[kept], framed[kept])),
              "auc_as_given_same_images": float(roc_auc_score(labels[kept], given[kept]))}
    report["difference"] = report["auc_through_framing_step"] - report["auc_as_given"]
    json.dump(report, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
