"""The adapted trunk's statistics taken over two cameras (card row 81): ACRIMA's training photographs
and CSDI's training-split discs, each camera half of the views.

    ACRIMA_DIR=... CSDI_DIR=... PYTHONPATH=functions:. python training/experiments/adabn_pooled.py \
        --out models/backbone/efficientnet_lite0_trunk_fundus_bn.npz [--csdi-share 0.5]

Why: the served trunk's stem and blocks 0-1 normalise with statistics of one camera's photographs
(training/adapt_trunk.py, card row 44), so another camera's contrast and texture reach the upper
blocks as a shift the head was never fitted across. Statistics over two cameras sit between them
(AdaBN's domain statistics, pooled because serving sees one photograph at a time). Run it in a
separate checkout (git worktree): every cached feature under runs/ belongs to the trunk it was
taken with, so the experiments there recompute theirs against this file.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from screening.preprocessing import MODEL_INPUT_SIZE  # noqa: E402
from training import data as data_mod  # noqa: E402
from training.adapt_trunk import BELOW_BLOCK, COPIES, adapted_trunk_arrays  # noqa: E402
from training.features import adaptation_views, augmented_inputs  # noqa: E402
from training.network import backbone_weights_path, trunk_fingerprint  # noqa: E402
from training.other_camera import disc_crops  # noqa: E402

SEED = 42


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--csdi-share", type=float, default=0.5, help="CSDI's share of the views")
    args = parser.parse_args()
    acrima, csdi = Path(os.environ["ACRIMA_DIR"]), Path(os.environ["CSDI_DIR"])
    train = data_mod.load_images(data_mod.discover_splits(acrima)["train"], size=MODEL_INPUT_SIZE)
    acrima_views = adaptation_views(train.images, train.paths, COPIES, SEED)  # the served trunk's views
    crops, _ = disc_crops(csdi, MODEL_INPUT_SIZE, split="train")
    wanted = round(len(acrima_views) * args.csdi_share / (1 - args.csdi_share))
    copies = max(0, -(-wanted // len(crops)) - 1)
    photos = [c.crop for c in crops]
    csdi_views = np.concatenate([np.stack([c.tensor for c in crops])]
                                + [augmented_inputs(photos, SEED * 7919 + 500 + c) for c in range(copies)])[:wanted]
    print(f"views: ACRIMA {len(acrima_views)}, CSDI {len(csdi_views)} ({len(crops)} discs, {copies} re-acquisitions "
          "of each)", flush=True)
    arrays, adapted = adapted_trunk_arrays(backbone_weights_path(), np.concatenate([acrima_views, csdi_views]),
                                           BELOW_BLOCK)
    np.savez_compressed(args.out, **arrays)
    print(json.dumps({"out": str(args.out), "sha256": trunk_fingerprint(args.out), "adapted_layers": adapted,
                      "acrima_views": len(acrima_views), "csdi_views": len(csdi_views)}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
