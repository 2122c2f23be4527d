"""The SageMaker training-job contract, so the same script runs in a job and on a laptop.

- hyperparameters: /opt/ml/input/config/hyperparameters.json (values are strings),
  overridden by command-line flags;
- data channels: SM_CHANNEL_<NAME>, default /opt/ml/input/data/<name>;
- the model: SM_MODEL_DIR (default /opt/ml/model), packed to model.tar.gz;
- reports: SM_OUTPUT_DATA_DIR (default /opt/ml/output/data);
- failure: the reason in /opt/ml/output/failure and a non-zero exit.

The training image's entry point is `python -m training.sagemaker train`: this module imports
only the standard library, so even a failing import of the training code (a missing package in
the image) is reported through the failure file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from dataclasses import dataclass, fields
from pathlib import Path
from typing import get_type_hints

# OPT_ML_ROOT moves /opt/ml elsewhere for laptops and tests; SageMaker never sets it.
def opt_ml() -> Path:
    return Path(os.environ.get("OPT_ML_ROOT", "/opt/ml"))

CHANNELS = ("train", "validation", "test")
# Optional channels: labelled uploads (<label>/<site>/<file>), the serving champion's model folder, and
# another hospital's photographs of eyes without the condition in CSDI's layout (training/other_camera.py).
EXTRA_CHANNELS = ("uploads", "champion", "other_camera")


@dataclass
class Hyperparameters:
    epochs: int = 150  # the frozen-trunk head trains in seconds an epoch
    batch_size: int = 32
    learning_rate: float = 3e-3
    patience: int = 25
    acquisition_probability: float = 0.0  # blur/JPEG/looser-crop augmentation share (see augment.py)
    augmented_copies: int = 3  # frozen trunk: augmented copies of train whose features are cached
    # frozen trunk: the head is fitted on every view's mirror image too (left and right eyes mirror;
    # grouped-CV AUC 0.920 -> 0.930, model card rows 17-18); C is chosen on the views as taken
    mirror_views: bool = True
    # frozen trunk with mirror_views: the model is served with mirror test-time augmentation (the mean
    # logit over each photograph and its mirror image, two passes; model.json "test_time_augmentation"),
    # and Platt scaling, the threshold and the grouped CV score it so. Grouped-CV AUC 0.948 -> 0.954,
    # specificity >= 0.80 under 14 of 15 variants (13), model call 6.0 -> 12.3 ms (model card row 51)
    mirror_tta: bool = True
    # frozen trunk: each training photograph weighs count(width bin, label)^-size_balance
    # (crossval.size_balance_weights) against the size shortcut. Off by default: 0.5 gave grouped-CV
    # AUC 0.934 +- 0.051 (0.930 +- 0.063 without) but a slightly worse invariance suite (card rows 20-21)
    size_balance: float = 0.0
    size_balance_bin_px: int = 200
    # > 0: the frozen-trunk head's features have the within-class linear information about the
    # acquisition set-up (native width in bins of this many px) erased first, and the erasure folded
    # into the dense unit (training/erasure.py; no serving cost); the grouped CV erases per fold.
    # Off: 50 gave grouped-CV AUC 0.954 -> 0.960 but a longer invariance-suite tail (median p95 |dp|
    # 0.208 -> 0.242) and another camera's discs called glaucoma 39 % -> 58 % (model card row 55)
    erase_acquisition_bin_px: int = 0
    # with erase_acquisition_bin_px: erase only the strongest this many directions (0: all; card row 58)
    erase_acquisition_directions: int = 0
    # > 0: in-graph local contrast normalisation of the grey level before the trunk, Gaussian window
    # of this many px at 224 (training/network.py)
    local_contrast_sigma: float = 0.0
    # > 0: a fixed Gaussian blur of the grey level (this many px at 224) before the trunk, so that
    # detail finer than a camera's focus cannot be a cue (training/network.py). Off by default: 1 px
    # cost grouped-CV AUC 0.928 -> 0.863 (model card row 27)
    input_blur_sigma: float = 0.0
    # the ImageNet trunk: EfficientNet-Lite0, -Lite1 or -Lite2 (lite0 | lite1 | lite2), each cut after
    # its fifth stage (stride 16); weights in models/backbone/ (`make backbone BACKBONE=lite2`).
    # Lite1/Lite2 scored lower across acquisition groups and cost 1.3-1.5x the call (model card row 29)
    backbone: str = "lite0"
    # > 0: the head pools only the feature cells within this many cells of the 14x14 grid's centre
    # (the rim's cells see the circle mask's artificial edge; training/network.py CentralCells).
    # Off: 5 cost grouped-CV AUC 0.928 -> 0.898 (model card row 31)
    pool_radius_cells: float = 0.0
    # the trunk's stride-2 steps from this block on (-1: the stem too; 99: none) as stride 1 + a
    # binomial low-pass and subsampling (BlurPool), so that a pixel's shift of the photograph
    # reshuffles the features less (training/network.py). Off: -1 halved the logit's shift
    # sensitivity but, without retraining the trunk, cost grouped-CV AUC 0.928 -> 0.892 (card row 32)
    antialias_from_block: int = 99
    # each feature block's pooled vector standardised over its channels per photograph, in the graph
    # (training/network.py BlockStandardisation), so a camera's gain on every activation is divided out.
    # Off: grouped-CV AUC 0.954 -> 0.958 (within noise), but the suite's median p95 |dp| 0.208 -> 0.223,
    # blur specificity 0.630 -> 0.587 and CSDI's discs called glaucoma 39 -> 42 % (model card row 61)
    standardise_feature_blocks: bool = False
    # re-estimate every batch-norm layer's statistics on this job's training photographs before the
    # features are taken (AdaBN; training/network.py adapt_batch_norm); the base set's stored features
    # then no longer fit. Off: on the ImageNet trunk, grouped-CV AUC 0.928 -> 0.949, but a longer |dp|
    # tail in the invariance suite, and another hospital's clear-lens discs called glaucoma 26 % ->
    # 38-46 % (model card rows 33-35); the lower blocks alone kept the gain without those costs (row 44,
    # the adapted trunk below)
    adapt_batch_norm: bool = False
    # with adapt_batch_norm: the statistics are taken over the photographs and this many random
    # re-acquisitions of each (training/acquisition.py), so blur and JPEG sit inside them (card row 34)
    adapt_batch_norm_copies: int = 0
    # the trunk file whose stem and blocks 0-1 carry batch-norm statistics re-estimated once on ACRIMA's
    # training photographs and 3 re-acquisitions of each (models/backbone/, `make adapted-trunk`); the
    # base set's features are taken with it. Off: grouped-CV AUC 0.948 -> 0.928 (model card row 44)
    adapted_trunk: bool = True
    # > 0: the frozen-trunk head's C, fixed; 0: chosen on val (training/head.py C_GRID). Fixed because
    # ACRIMA's val split barely tells the larger Cs apart and rewards its shortcuts: on the adapted trunk
    # it picks 0.3 by 0.0004 of mean val AUC over 0.1, and 0.3 lengthened the invariance suite's tail
    # (card row 47); with full AdaBN it picked the grid's top, 1.0 (row 33). 0.1 is row 25's val choice
    head_c: float = 0.1
    # > 0: the head's logit variance across reframings of each training photograph (tighter crops,
    # zoom; training/acquisition.py reframings) penalised with this weight (head.penalised_head).
    # Reframing moves both classes' logits the same way, so the penalty costs little discrimination
    # (card rows 69 and 71)
    reframing_penalty: float = 0.01
    # frozen trunk with reframing_penalty: every training photograph also fitted as smaller files
    # (training/acquisition.py low_pixel: shorter side 130-240 px, JPEG q75-95; the photograph and
    # augmented_copies re-acquisitions of it), so that few pixels cannot mean normal, the direction of
    # the first model's misses at other hospitals (card rows 42 and 76)
    low_pixel_copies: bool = True
    # frozen trunk with reframing_penalty: each of another hospital's normal discs (the other_camera
    # channel, or the base set's stored ones; training/other_camera.py) counts this many photographs.
    # 0.25: its held-out discs called glaucoma 30 % -> 19 % out of fold, with low_pixel_copies (card row 76)
    other_camera_weight: float = 0.25
    seed: int = 42
    image_size: int = 224
    dropout: float = 0.2
    cam_channels: int = 0  # 0: the dense layer sits on the trunk's own features
    min_sensitivity: float = 0.9
    val_fraction: float = 0.15
    pretrained: bool = True
    fine_tune_from_block: int = 11  # 11 = the whole pretrained trunk stays frozen
    # > 0: after the frozen-trunk head, fine-tune blocks 5-10 on cached lower-trunk activations
    # of the photographs and their re-acquired copies (training/finetune.py)
    fine_tune_top_epochs: int = 0
    fine_tune_learning_rate: float = 1e-4
    fine_tune_consistency: float = 1.0  # weight of the squared |dp| between two copies
    # true: each copy's p is pulled to the starting model's p on the clean photograph instead (card row 70)
    fine_tune_anchor: bool = False
    model_version: str = ""
    # the condition this job trains: data folders normal/ + <positive_class>/ (default: the condition)
    condition: str = "glaucoma"
    positive_class: str = ""
    # the promotion gate (training/gate.py)
    gate_auc_margin: float = 0.01  # the challenger's AUC may be this much below the champion's
    gate_min_sensitivity: float = 0.85  # at the challenger's own threshold, on the evaluation images
    upload_holdout_fraction: float = 0.25  # share of each site's uploads kept for evaluation only
    # the report's invariance suite (training/robustness.py): every variant, or these (comma-separated)
    invariance_variants: str = ""


def _parse_bool(text: str) -> bool:
    lowered = str(text).strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"not a boolean: {text!r}")


def _coerce(name: str, kind: type, value: object) -> object:
    try:
        if kind is bool:
            return _parse_bool(value)  # type: ignore[arg-type]
        return kind(json.loads(value) if kind is not str and isinstance(value, str) else value)
    except (ValueError, TypeError, json.JSONDecodeError):
        raise ValueError(f"hyperparameter {name}={value!r} is not a valid {kind.__name__}")


def hyperparameters_path() -> Path:
    return opt_ml() / "input" / "config" / "hyperparameters.json"


def parse_hyperparameters(argv: list[str] | None = None) -> tuple[Hyperparameters, argparse.Namespace]:
    """Defaults < hyperparameters.json (strings, as SageMaker writes them) < CLI flags."""
    hints = get_type_hints(Hyperparameters)
    types = {f.name: hints[f.name] for f in fields(Hyperparameters)}
    values: dict[str, object] = {}
    hp_file = hyperparameters_path()
    if hp_file.is_file():
        raw = json.loads(hp_file.read_text())
        unknown = set(raw) - set(types)
        if unknown:
            raise ValueError(f"unknown hyperparameter(s): {', '.join(sorted(unknown))}")
        values.update({k: _coerce(k, types[k], v) for k, v in raw.items()})

    parser = argparse.ArgumentParser(description="Train the glaucoma screening model.")
    for name, kind in types.items():
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, default=None,
                            help=f"{kind.__name__} (default {getattr(Hyperparameters, name)!r})")
    parser.add_argument("--data", type=Path, default=None,
                        help="local data root (any accepted layout); overrides the channels")
    for channel in CHANNELS + EXTRA_CHANNELS:
        parser.add_argument(f"--{channel.replace('_', '-')}", dest=channel, type=Path, default=None,
                            help=f"the {channel} channel")
    parser.add_argument("--model-dir", type=Path,
                        default=Path(os.environ.get("SM_MODEL_DIR", opt_ml() / "model")))
    parser.add_argument("--output-data-dir", type=Path,
                        default=Path(os.environ.get("SM_OUTPUT_DATA_DIR", opt_ml() / "output" / "data")))
    parser.add_argument("--checkpoint-dir", type=Path, default=Path(os.environ.get(
        "SM_CHECKPOINT_DIR", opt_ml() / "checkpoints")))
    args = parser.parse_args(argv)
    for name, kind in types.items():
        if getattr(args, name) is not None:
            values[name] = _coerce(name, kind, getattr(args, name))
    for channel in CHANNELS + EXTRA_CHANNELS:
        if getattr(args, channel) is None:
            env = os.environ.get(f"SM_CHANNEL_{channel.upper()}")
            default = opt_ml() / "input" / "data" / channel
            path = Path(env) if env else default
            setattr(args, channel, path if path.exists() or env else None)
    return Hyperparameters(**values), args  # type: ignore[arg-type]


def write_failure(reason: str) -> Path | None:
    """SageMaker shows this file's text as the job's FailureReason."""
    path = opt_ml() / "output" / "failure"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(reason[:1024])
        return path
    except OSError:
        return None


def main(argv: list[str] | None = None) -> int:
    """Import the training code inside the try, so an image missing a package fails loudly."""
    try:
        from training.train import main as train_main
    except Exception as exc:  # noqa: BLE001 - any import failure must reach the failure file
        traceback.print_exc()
        reason = f"the training code failed to import: {type(exc).__name__}: {exc}"
        where = write_failure(reason)
        print(f"training failed: {reason}" + (f" (written to {where})" if where else ""),
              file=sys.stderr, flush=True)
        return 1
    return train_main(argv)


if __name__ == "__main__":
    sys.exit(main())
