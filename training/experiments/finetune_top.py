"""training.train with --fine-tune-top-epochs, the lower-trunk activation banks cached on disk
(runs/act_cache/) so that recipes differing only after the cut (consistency weight, learning
rate, epochs) skip the ~6 minutes of re-acquisition and lower trunk.

    PYTHONPATH=functions:. python training/experiments/finetune_top.py --data $ACRIMA_DIR \
        --model-dir runs/ftN/model --output-data-dir runs/ftN/report --augmented-copies 10 \
        --fine-tune-top-epochs 8 --fine-tune-consistency 10 --model-version ...
"""

import hashlib
import sys
from pathlib import Path

import numpy as np

from training import finetune, train

_original = finetune.activation_bank
CACHE = Path("runs/act_cache")


def cached_activation_bank(lower, photos, clean_inputs, copies, seed, **kwargs):
    key = hashlib.sha256(clean_inputs[:, ::16, ::16].tobytes()).hexdigest()[:12]
    path = CACHE / f"acts_{key}_n{len(clean_inputs)}_k{copies}_s{seed}.npy"
    if path.is_file():
        print(f"  activations from {path}", flush=True)
        return np.load(path)
    bank = _original(lower, photos, clean_inputs, copies, seed, **kwargs)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, bank)
    return bank


finetune.activation_bank = cached_activation_bank
if __name__ == "__main__":
    sys.exit(train.main())
