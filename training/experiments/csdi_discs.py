"""How often the committed glaucoma model calls a disc glaucomatous on another hospital's camera.

    CSDI_DIR=<the CSDI folder> PYTHONPATH=functions:. python training/experiments/csdi_discs.py [--locator] [--model-dir DIR] [--mirror-tta] \
        [--held-out]

CSDI (a Chinese hospital's full-field photographs of cataract patients, CC BY-NC 4.0) has no
glaucoma labels, but glaucoma is uncommon among them (none of the 187 expert descriptions
mentions it), so the share called glaucoma is, at most, a false positive rate on a camera,
population and framing the model never saw: an upper bound on 1 - specificity there. Each disc
is cropped at ACRIMA's framing around the annotated disc box (or the disc locator's with
--locator), then preprocessed and scored as serving does. By cataract severity, since a dense
cataract blurs the photograph and blur is the suite's weakest variant. With --mirror-tta each
disc is scored as the mean logit over the crop and its mirror image whatever the model's card says,
at the same threshold. From row 76 on, the served model is fitted on CSDI's training-split discs as
normals: --held-out scores only the val and test patients, the ones it never saw.
"""

from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path

import numpy as np

from screening import disc, framing, quality
from screening.config import BUNDLED_MODEL_DIR
from screening.inference import GlaucomaModel
from training.other_camera import disc_crops

GROUPS = (("severity 0-2.5", 0.0, 2.5), ("severity 3-3.5", 3.0, 3.5), ("severity 4-10", 4.0, 10.0))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--locator", action="store_true", help="crop where the disc locator finds the disc")
    parser.add_argument("--model-dir", type=Path, default=BUNDLED_MODEL_DIR, help="a model folder (default: the served one)")
    parser.add_argument("--mirror-tta", action="store_true", help="the mean logit over the crop and its mirror image")
    parser.add_argument("--held-out", action="store_true",
                        help="only CSDI's val and test patients (the served model is fitted on its train split, row 76)")
    args = parser.parse_args()
    csdi = Path(os.environ["CSDI_DIR"])  # required, as ACRIMA_DIR is for the other scripts here
    model = GlaucomaModel(args.model_dir, num_threads=1,
                          test_time_augmentation="mirror" if args.mirror_tta else None)
    crops, missed = disc_crops(csdi, model.card.input_size, disc.default_locator() if args.locator else None)
    if args.held_out:
        crops = [c for c in crops if c.split != "train"]
    scored: list[tuple[float, float, int, str]] = []  # severity, p, crop side, the gate's verdict
    for found in crops:
        p = model.predict(found.tensor[np.newaxis])[0].probability
        # what serving's quality gate says of this crop (as the full-field path runs it)
        report = quality.assess(found.tensor, found.info, waived=framing.FRAMING_REJECTIONS)
        verdict = report.rejection or ("flagged" if {"blurred", "low_resolution"} & set(report.flags) else "clean")
        scored.append((float(found.row["severity"]), p, found.crop.width, verdict))
    print(f"model {model.version}, threshold {model.threshold:.3f}; {len(scored)} discs"
          + (f" ({missed} not found by the locator)" if args.locator else " (annotated boxes)")
          + f", crop side median {statistics.median(s[2] for s in scored):.0f} px")
    groups = [(name, lambda s, lo=low, hi=high: lo <= s[0] <= hi) for name, low, high in (("all", 0.0, 10.0), *GROUPS)]
    groups += [("gate: clean", lambda s: s[3] == "clean"),
               ("gate: blurred/low-res flag", lambda s: s[3] == "flagged"),
               ("gate: refused", lambda s: s[3] not in ("clean", "flagged"))]
    for name, member in groups:
        ps = [s[1] for s in scored if member(s)]
        if ps:
            called = sum(p >= model.threshold for p in ps)
            print(f"  {name:27s} n={len(ps):3d}  called glaucoma {called:3d} ({called / len(ps):.0%}),"
                  f" median p {statistics.median(ps):.3f}, p90 {float(np.percentile(ps, 90)):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
