"""Grouped 5-fold cross-validation of the fine-tuned-top recipe against the frozen-trunk head
on the same folds (training/crossval.py's folds: native width in 50-px bins).

    ACRIMA_DIR=/path/to/acrima PYTHONPATH=functions:. python training/experiments/finetune_cv.py \
        COPIES EPOCHS [C] [CONSISTENCY] [LR] [--anchor] [--adapted]

Per fold: the head (fixed C) on the clean and re-acquired features of 85 % of the training
folds, Platt scaling and the threshold (sensitivity >= 0.90, clean + re-acquired) on the other
15 %; then blocks 5-10 (run through finetune_whole.py: the whole trunk) and the head
fine-tuned (training/finetune.py, epoch chosen on that 15 %), Platt and threshold again. Both scored on the test fold, clean and re-acquired.
--anchor: the consistency target is the starting model's p on the clean photograph (card row 70);
--adapted: the served trunk, its lower batch-norm statistics re-estimated on ACRIMA (card row 44).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

from training import data as data_mod  # noqa: E402
from training import finetune  # noqa: E402
from training.crossval import grouped_folds  # noqa: E402
from training.features import load_photos  # noqa: E402
from training.head import LinearHead, expected_calibration_error, fit_head, platt_scaling, write_into  # noqa: E402
from training.metrics import choose_threshold, classification_report  # noqa: E402
from training.network import OUTPUT_LAYER, backbone_weights_path, build_classifier  # noqa: E402
from training.experiments.finetune_top import cached_activation_bank  # noqa: E402

flags = {a for a in sys.argv[1:] if a.startswith("--")}
argv = [sys.argv[0], *(a for a in sys.argv[1:] if not a.startswith("--"))]
copies = int(argv[1]) if len(argv) > 1 else 6
epochs = int(argv[2]) if len(argv) > 2 else 4
c = float(argv[3]) if len(argv) > 3 else 0.3
consistency = float(argv[4]) if len(argv) > 4 else 1.0
lr = float(argv[5]) if len(argv) > 5 else 1e-4
anchor = "--anchor" in flags
seed = 42
root = Path(os.environ["ACRIMA_DIR"])
keras.utils.set_random_seed(seed)
splits = data_mod.discover_splits(root)
model = build_classifier(backbone_weights=backbone_weights_path(adapted="--adapted" in flags))
lower, upper = finetune.lower_model(model), finetune.upper_model(model)
# Per split with train.py's seeds (42, 43, 44), through finetune_top.py's disk cache: the banks of
# a finetune_top.py run with the same --augmented-copies are reused.
acts, labels, paths = [], [], []
for i, name in enumerate(("train", "val", "test")):
    loaded = data_mod.load_images(splits[name])
    acts.append(cached_activation_bank(lower, load_photos(loaded.paths), loaded.images, copies, seed + i))
    labels.append(loaded.labels)
    paths += loaded.paths
acts = np.concatenate(acts, axis=1)
labels = np.concatenate(labels).astype(int)
widths = data_mod.native_widths(paths)
frozen_bank = finetune.pooled_from_activations(upper, acts)
initial = [w.copy() for w in model.get_weights()]


def score(bank, fit_idx, cal_idx, test_idx, head):
    head = platt_scaling(head, bank[0, cal_idx], labels[cal_idx])
    dims = bank.shape[-1]
    threshold = choose_threshold(np.tile(labels[cal_idx], len(bank)),
                                 head.probabilities(bank[:, cal_idx].reshape(-1, dims)), 0.9)
    clean = head.probabilities(bank[0, test_idx])
    figures = classification_report(labels[test_idx], clean, threshold)
    reacquired = np.stack([head.probabilities(bank[j, test_idx]) for j in range(1, len(bank))])
    return {"roc_auc": figures["roc_auc"], "sensitivity": figures["sensitivity"],
            "specificity": figures["specificity"], "ece": expected_calibration_error(labels[test_idx], clean),
            "reacquired_roc_auc": float(roc_auc_score(np.tile(labels[test_idx], len(reacquired)), reacquired.ravel())),
            "reacquired_delta_p_p95": float(np.percentile(np.abs(reacquired - clean), 95))}, head


results = {"frozen": [], "fine_tuned": []}
for k, (train_idx, test_idx) in enumerate(grouped_folds(labels, widths, seed=seed)):
    fit_idx, cal_idx = train_test_split(train_idx, test_size=0.15, random_state=seed + k,
                                        stratify=labels[train_idx])
    model.set_weights(initial)
    head = fit_head(frozen_bank[:, fit_idx].reshape(-1, frozen_bank.shape[-1]),
                    np.tile(labels[fit_idx], len(frozen_bank)), c)
    figures, calibrated = score(frozen_bank, fit_idx, cal_idx, test_idx, head)
    results["frozen"].append(figures)
    print(f"fold {k} frozen     {json.dumps({k2: round(v, 3) for k2, v in figures.items()})}", flush=True)
    write_into(model, calibrated)
    finetune.fine_tune(model, acts[:, fit_idx], labels[fit_idx], acts[:, cal_idx], labels[cal_idx],
                       epochs=epochs, learning_rate=lr, consistency=consistency, seed=seed + k,
                       anchor=anchor)
    tuned_bank = np.zeros_like(frozen_bank)  # only the calibration part and the test fold are scored
    scored = np.concatenate([cal_idx, test_idx])
    tuned_bank[:, scored] = finetune.pooled_from_activations(upper, acts[:, scored])
    weights, bias = model.get_layer(OUTPUT_LAYER).get_weights()
    figures, _ = score(tuned_bank, fit_idx, cal_idx, test_idx,
                       LinearHead(weights[:, 0].astype(np.float64), float(bias[0])))
    results["fine_tuned"].append(figures)
    print(f"fold {k} fine-tuned {json.dumps({k2: round(v, 3) for k2, v in figures.items()})}", flush=True)

for recipe, folds in results.items():
    print(recipe)
    for key in folds[0]:
        values = np.array([f[key] for f in folds])
        print(f"  {key}: {values.mean():.3f} +- {values.std(ddof=1):.3f}")
Path("runs").mkdir(exist_ok=True)
Path(os.environ.get("FINETUNE_CV_OUT", f"runs/finetune_cv_k{copies}_e{epochs}.json")).write_text(json.dumps(results, indent=2))
