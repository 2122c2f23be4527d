"""Finer trunk blocks added to what the head reads: blocks 0 (112x112x16, stride 2) and 2 (56x56x24,
stride 4) beside the served 4+7+10, grouped 5-fold CV and the invariance suite.

    ACRIMA_DIR=/path/to/acrima PYTHONPATH=functions:. python training/experiments/fine_blocks_suite.py

Why: row 67 found that without block 4's fine detail the head is less specific under blur, not
more; if fine structure steadies it, finer blocks may steady it further. The blocks are average-
pooled onto the 14x14 grid as the served ones are (network.multi_scale_features), so the heatmap and
the serving cost barely change. The features of all 705 images (the bank's draws) and of the suite's
variants are taken once with the head reading 0+2+4+7+10 (runs/fine_blocks_*.npz, about 12 minutes);
each arm is a choice of columns, the served recipe refitted as head_suite.py does (card row 68).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from training import data as data_mod  # noqa: E402
from training.experiments.blocks_suite import block_columns, score_block_arms  # noqa: E402
from training.experiments.head_suite import variant_features  # noqa: E402
from training.experiments.tta_cv import cached_banks, served_banks  # noqa: E402
from training.features import pooled_model  # noqa: E402
from training.network import backbone_weights_path, build_classifier  # noqa: E402

FINE_BLOCKS = (0, 2, 4, 7, 10)


def fine_pooled_model():
    return pooled_model(build_classifier(feature_blocks=FINE_BLOCKS,
                                         backbone_weights=backbone_weights_path(adapted=True)))


def main() -> int:
    served, _, labels, widths = served_banks()
    bank, mirror = cached_banks("fine_blocks_banks", fine_pooled_model)
    print(f"the served blocks' columns match the cached served features to "
          f"{np.abs(bank[..., block_columns((4, 7, 10), FINE_BLOCKS)] - served).max():.1e}", flush=True)
    splits = data_mod.read_splits_csv(Path(os.environ["ACRIMA_DIR"]))
    variants = variant_features(list(splits["test"].paths), "fine_blocks_variants", fine_pooled_model)
    arms = {"+".join(map(str, blocks)): block_columns(blocks, FINE_BLOCKS)
            for blocks in ((4, 7, 10), (2, 4, 7, 10), (0, 4, 7, 10), (0, 2, 4, 7, 10))}
    score_block_arms(bank, mirror, variants, labels.astype(int), widths, splits, arms)
    return 0


if __name__ == "__main__":
    sys.exit(main())
