"""Which trunk blocks the mirror-fitted head should read, in the grouped 5-fold CV: the head on a
subset of the pooled multi-scale channels (block 4: 0-40, block 7: 40-120, block 10: 120-232),
on tta_cv.py's cached features, folds and recipe (run `tta_cv.py 6` once first).

    PYTHONPATH=functions:. python training/experiments/blocks_cv.py [C]

A subset needs no other network: the dense unit's weights on the other channels would be zero.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from training.crossval import cross_validate

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tta_cv import cache_path  # noqa: E402
SUBSETS = {"blocks 4+7+10": slice(0, 232), "blocks 7+10": slice(40, 232), "block 10": slice(120, 232)}


def main() -> int:
    c = float(sys.argv[1]) if len(sys.argv) > 1 else 0.3
    cached = np.load(cache_path())
    for name, channels in SUBSETS.items():
        bank, mirror = cached["bank"][..., channels], cached["mirror"][..., channels]
        result = cross_validate(bank, cached["labels"], cached["widths"], c, seed=42,
                                fit_bank=np.concatenate([bank, mirror]))
        print(f"{name} (C {c:g}): " + ", ".join(f"{key} {value['mean']:.3f} +- {value['sd']:.3f}"
                                                for key, value in result["summary"].items())
              + "; AUC per fold " + ", ".join(f"{f['roc_auc']:.3f}" for f in result["folds"]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
