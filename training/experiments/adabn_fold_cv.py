"""Does the adapted trunk's gain across acquisition groups survive when the held-out group's
photographs did not shape the statistics? (card row 35)

Rows 33-34 took the batch-norm statistics over ACRIMA's whole train split, which holds
photographs of every width group, so in their grouped CV each held-out group had already moved
the statistics (AdaBN is a label-free adaptation to the data it sees). Here each fold's trunk is
adapted on the train-split photographs outside that fold only (and 3 re-acquisitions of each, as
row 34), its feature bank taken, and that fold scored exactly as training.train's
cross-validation scores it (C 0.1, 6 copies, mirrored views).

    ACRIMA_DIR=... PYTHONPATH=functions:. python training/experiments/adabn_fold_cv.py [all|fold|imagenet ...]

"all" (adapted on the whole train split) and "imagenet" must reproduce row 34's and row 25's
grouped CV exactly; "fold" is the measurement. About 5 min of features per trunk on 2 cores.
"""
import json
import os
import sys
import time
from pathlib import Path

import keras
import numpy as np

from training import crossval, data as data_mod, network
from training.features import adaptation_views, pooled_model, split_mirror
from training.train import photo_bank

SEED, COPIES, C = 42, 6, 0.1
keras.utils.set_random_seed(SEED)
splits = data_mod.discover_splits(Path(os.environ["ACRIMA_DIR"]))
order = ("train", "val", "test")
loaded = {name: data_mod.load_images(splits[name]) for name in order}
labels = np.concatenate([loaded[n].labels for n in order])
widths = np.concatenate([data_mod.native_widths(loaded[n].paths) for n in order])
in_train = np.concatenate([np.full(len(loaded[n].labels), n == "train") for n in order])
folds = crossval.grouped_folds(labels, widths, seed=SEED)


def grouped_cv(adapt_on: np.ndarray | None = None) -> dict:
    """training.train's grouped CV on the ImageNet trunk, or on it adapted on the train-split
    photographs at `adapt_on` (a mask over all images)."""
    model = network.build_classifier(dropout=0.0, backbone_weights=network.backbone_weights_path())
    if adapt_on is not None:
        train = loaded["train"]
        index = np.flatnonzero(adapt_on[:len(train.labels)])
        views = adaptation_views(train.images[index], [train.paths[i] for i in index], 3, SEED)
        network.adapt_batch_norm(model, views)
    pooled = pooled_model(model)
    fit_bank = np.concatenate([photo_bank(pooled, loaded[n], COPIES, SEED + i, mirror=True)
                               for i, n in enumerate(order)], axis=1)
    bank, _ = split_mirror(fit_bank, True)
    return crossval.cross_validate(bank, labels, widths, C, seed=SEED, fit_bank=fit_bank)


results = {}
for variant in sys.argv[1:] or ["fold"]:
    started = time.monotonic()
    if variant == "all":
        results[variant] = grouped_cv(in_train)["folds"]
    elif variant == "imagenet":
        results[variant] = grouped_cv()["folds"]
    else:
        per_fold = []
        for k, (_, test_idx) in enumerate(folds):
            outside = in_train.copy()
            outside[test_idx] = False
            print(f"fold {k}: statistics from {int(outside.sum())} train-split photographs outside it",
                  flush=True)
            per_fold.append(grouped_cv(outside)["folds"][k])
        results[variant] = per_fold
    aucs = [f["roc_auc"] for f in results[variant]]
    print(f"{variant}: grouped CV AUC {np.mean(aucs):.3f} +- {np.std(aucs, ddof=1):.3f}; folds "
          + ", ".join(f"{f['roc_auc']:.3f} (spec {f['specificity']:.3f})" for f in results[variant])
          + f"; specificity {np.mean([f['specificity'] for f in results[variant]]):.3f} "
          f"({time.monotonic() - started:.0f} s)", flush=True)
print(json.dumps({v: [{k: f[k] for k in ("fold", "roc_auc", "sensitivity", "specificity", "ece")} for f in fs]
                  for v, fs in results.items()}))
