"""Serving's framing and quality gate on another camera's disc crops at other framings (card row 83).

    CSDI_DIR=/path/to/csdi PYTHONPATH=functions:. python training/experiments/csdi_gate.py \
        [--factors 0.6,0.8,1,1.25,1.6,2,2.5,3]

Why: a photograph the gate refuses is a screening lost, and other hospitals crop their discs
tighter or looser than ACRIMA. Every CSDI disc with a visible disc is cut from its full-field
photograph with the crop side `factor` times serving's (about the annotated disc box), saved as a
JPEG at the crop's own pixels, as a clinic would send it, and put through serving's own path
(preprocess_bytes, then framing.frame as a disc-crop model frames it). Prints, per factor, how many
were screened as sent, re-cropped as a full field, or refused (and why, with the refused discs'
cataract severities), and the flags given.
"""

from __future__ import annotations

import argparse
import io
import os
from collections import Counter
from pathlib import Path

from screening import disc, framing
from screening.preprocessing import (DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, MODEL_INPUT_SIZE, ImageRejected,
                                     preprocess_bytes)
from training.other_camera import LOCATOR_DIR, annotated_disc, annotated_photographs

JPEG_QUALITY = 92


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--factors", default="0.6,0.8,1,1.25,1.6,2,2.5,3")
    args = parser.parse_args()
    factors = [float(f) for f in args.factors.split(",")]
    disc_to_crop = disc.Locator.load(LOCATOR_DIR).disc_to_crop
    verdicts = {f: Counter() for f in factors}
    flags = {f: Counter() for f in factors}
    refused = {f: [] for f in factors}
    count = 0
    for _, row, image, info, _ in annotated_photographs(Path(os.environ["CSDI_DIR"])):
        count += 1
        found = annotated_disc(row, image, info)
        for factor in factors:
            buffer = io.BytesIO()
            disc.crop(image, found.crop_box(disc_to_crop / factor)).save(buffer, "JPEG", quality=JPEG_QUALITY)
            data = buffer.getvalue()
            try:
                tensor, sent = preprocess_bytes(data)
                framed = framing.frame(tensor, sent, data, "disc_crop", MODEL_INPUT_SIZE, DEFAULT_MAX_PIXELS,
                                       DEFAULT_MAX_BYTES)
            except ImageRejected as rejection:
                verdicts[factor][f"refused {rejection.reason}"] += 1
                refused[factor].append(float(row["severity"]))
                continue
            verdicts[factor]["re-cropped" if framed.fields.get("cropped") else "as sent"] += 1
            flags[factor].update(framed.flags)
    print(f"{count} CSDI discs, each cut at {len(factors)} framings")
    for factor in factors:
        severities = sorted(refused[factor])
        print(f"x{factor:g}: " + ", ".join(f"{k} {v}" for k, v in sorted(verdicts[factor].items()))
              + (f" (severity {severities[0]:g}-{severities[-1]:g})" if severities else "")
              + "; flags " + ", ".join(f"{k} {v}" for k, v in flags[factor].most_common()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
