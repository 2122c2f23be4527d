"""Training entry point: runs unchanged as a SageMaker training job and on a laptop.

    python -m training.train --data /path/to/acrima --model-dir models \
        --output-data-dir runs/acrima --model-version acrima-effl0-v1

See training/sagemaker.py for the job contract and training/metrics.py for the
metric lines and their regexes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from training import data as data_mod  # noqa: E402
from training import metrics as metrics_mod  # noqa: E402
from training.sagemaker import Hyperparameters, parse_hyperparameters, write_failure  # noqa: E402

KERAS_FILE = "glaucoma.keras"
log = logging.getLogger("training")


def resolve_splits(args, hp: Hyperparameters) -> dict[str, data_mod.LabelledFiles]:
    """The data's own splits where it has them; val carved from train otherwise."""
    if args.data is not None:
        splits = data_mod.discover_splits(args.data)
    else:
        if args.train is None:
            raise data_mod.DataLayoutError(
                "no training data: pass --data, --train, or set SM_CHANNEL_TRAIN")
        splits = data_mod.discover_splits(args.train)
        if args.validation is not None:
            splits["val"] = data_mod.list_labelled_folder(args.validation)
        if args.test is not None:
            splits["test"] = data_mod.list_labelled_folder(args.test)
    if "val" not in splits:
        splits["train"], splits["val"] = data_mod.stratified_split(splits["train"], hp.val_fraction, hp.seed)
    return splits


def trunk_weights(hp: Hyperparameters) -> Path | None:
    """The trunk file a job loads (None: an untrained trunk); the base set's features fit only the
    one they were taken with."""
    from training.network import backbone_weights_path

    return backbone_weights_path(hp.backbone, hp.adapted_trunk) if hp.pretrained else None


def train(hp: Hyperparameters, splits: dict, checkpoint_dir: Path, other_camera: Path | None = None):
    """Load data with the serving preprocessing, build the model, fit it; returns
    (model, data, history, extras) where extras holds what only the frozen-trunk
    recipe measures (C selection, cross-validation). `other_camera`: another hospital's normal
    discs for the frozen-trunk head (training/other_camera.py)."""
    import keras

    from training.network import TRUNK_BLOCKS, build_classifier

    keras.utils.set_random_seed(hp.seed)
    loaded = {name: data_mod.load_images(files, size=hp.image_size) for name, files in splits.items()}
    for name, images in loaded.items():
        print(f"{name}: {len(images.labels)} images ({int(images.labels.sum())} glaucoma), "
              f"{len(images.skipped)} skipped", flush=True)
    model = build_classifier(input_size=hp.image_size, cam_channels=hp.cam_channels,
                             dropout=hp.dropout, fine_tune_from_block=hp.fine_tune_from_block,
                             local_contrast_sigma=hp.local_contrast_sigma,
                             input_blur_sigma=hp.input_blur_sigma,
                             backbone=hp.backbone, pool_radius_cells=hp.pool_radius_cells,
                             antialias_from_block=hp.antialias_from_block,
                             standardise_feature_blocks=hp.standardise_feature_blocks,
                             backbone_weights=trunk_weights(hp))
    if hp.adapt_batch_norm:
        from training.features import adaptation_views
        from training.network import adapt_batch_norm

        train_split = loaded["train"]
        images = adaptation_views(train_split.images, train_split.paths, hp.adapt_batch_norm_copies, hp.seed)
        print(f"batch norm re-estimated on {len(images)} training views: {adapt_batch_norm(model, images)} layers",
              flush=True)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    frozen_trunk = hp.pretrained and hp.fine_tune_from_block >= TRUNK_BLOCKS and not hp.cam_channels
    if frozen_trunk and hp.fine_tune_top_epochs > 0:
        history, extras = fit_fine_tuned_top(model, loaded, hp)
        return model, loaded, history, extras
    if frozen_trunk:
        history, extras = fit_invariant_head(model, loaded, hp, other_camera)
        return model, loaded, history, extras
    history = fit_end_to_end(model, loaded["train"], loaded["val"], hp, checkpoint_dir)
    return model, loaded, {k: [float(v) for v in vals] for k, vals in history.history.items()}, {}


def fit_invariant_head(model, loaded: dict, hp: Hyperparameters,
                       other_camera: Path | None = None) -> tuple[dict, dict]:
    """Frozen trunk: pooled features of every photograph and of `augmented_copies` random
    re-acquisitions of it (framing, rotation, blur, resampling, JPEG, colour), and with
    `mirror_views` of each of those mirrored left to right; an
    L2-regularised logistic head on them, its C chosen on val (clean and re-acquired),
    then Platt-scaled on val and written into the model's dense unit.

    With hp.reframing_penalty, the head is also fitted on each photograph saved as smaller files
    (hp.low_pixel_copies) and on another hospital's normal discs from `other_camera`
    (hp.other_camera_weight each; more_photographs).

    With a test split and enough images, the same bank gives the grouped 5-fold
    cross-validation (training/crossval.py), each fold fitted on its own photographs' smaller
    files and on the other hospital's discs."""
    from training import crossval
    from training.erasure import width_bins
    from training.features import load_photos, pooled_model, split_mirror

    pooled = pooled_model(model)
    seeds = {name: hp.seed + i for i, name in enumerate(loaded)}  # the reframings' draws use them too
    cross_validating = "test" in loaded and sum(len(images.labels) for images in loaded.values()) >= 100
    banks, spread_banks, low_banks = {}, {}, {}
    for name, images in loaded.items():  # each split's photographs decoded once, for all its banks
        photos = load_photos(images.paths)
        banks[name] = photo_bank(pooled, images, hp.augmented_copies, seeds[name], hp.mirror_views, photos)
        if hp.reframing_penalty and (name == "train" or cross_validating):
            spread_banks[name] = spread_bank(pooled, images, banks[name], seeds[name], photos)
            if hp.low_pixel_copies:
                low_banks[name] = low_pixel_photo_bank(pooled, images, hp.augmented_copies, seeds[name],
                                                       hp.mirror_views, photos)
        del photos
    widths = {name: data_mod.native_widths(images.paths) for name, images in loaded.items()}

    def spreads(names: tuple[str, ...]) -> np.ndarray | None:
        """The reframing penalty's views of these splits' photographs, side by side (None: no penalty)."""
        return np.concatenate([spread_banks[n] for n in names], axis=1) if hp.reframing_penalty else None

    other = other_camera_bank(pooled, other_camera, hp)
    val_bank, val_mirror = split_mirror(banks["val"], hp.mirror_views)
    history, extras = fit_head_on_features(model, banks["train"], loaded["train"].labels,
                                           val_bank, loaded["val"].labels, hp, widths["train"], val_mirror,
                                           spreads(("train",)),
                                           more_photographs(low_banks.get("train"), loaded["train"].labels,
                                                            other, hp))
    if cross_validating:
        order = ("train", "val", "test")
        fit_bank = np.concatenate([banks[name] for name in order], axis=1)
        bank, mirrored = split_mirror(fit_bank, hp.mirror_views)
        labels = np.concatenate([loaded[name].labels for name in order])
        all_widths = np.concatenate([widths[name] for name in order])

        all_low = np.concatenate([low_banks[name] for name in order], axis=1) if low_banks else None

        def more_fit_bank(index: np.ndarray):
            return more_photographs(None if all_low is None else all_low[:, index], labels[index], other, hp)

        def fit_weights(index: np.ndarray) -> np.ndarray:
            return crossval.size_balance_weights(all_widths[index], labels[index], hp.size_balance,
                                                 hp.size_balance_bin_px)

        extras["cross_validation"] = crossval.cross_validate(
            bank, labels, all_widths, extras["c"], seed=hp.seed, min_sensitivity=hp.min_sensitivity,
            fit_bank=fit_bank, fit_weights=fit_weights if hp.size_balance else None,
            view_scores=crossval.mirror_view_scores(bank, mirrored) if extras.get("mirror_tta") else None,
            erase_concept=(width_bins(all_widths, hp.erase_acquisition_bin_px)
                           if hp.erase_acquisition_bin_px else None),
            erase_directions=hp.erase_acquisition_directions,
            invariance_penalty=hp.reframing_penalty,
            penalty_bank=spreads(order), more_fit_bank=more_fit_bank if hp.reframing_penalty else None)
        for key, value in extras["cross_validation"]["summary"].items():
            print(f"  5-fold grouped CV {key}: {value['mean']:.3f} +- {value['sd']:.3f}", flush=True)
    return history, extras


def fit_fine_tuned_top(model, loaded: dict, hp: Hyperparameters) -> tuple[dict, dict]:
    """The invariant head as in fit_invariant_head, then blocks 5-10 and the head fine-tuned on
    cached lower-trunk activations of every photograph and its re-acquired copies
    (training/finetune.py), then Platt-scaled again on val. No cross-validation here: a fold's
    fine-tuning costs as much as this one (training/experiments/finetune_cv.py measures it)."""
    from training import finetune
    from training.features import load_photos
    from training.head import LinearHead, platt_scaling, write_into
    from training.network import OUTPUT_LAYER

    lower, upper = finetune.lower_model(model), finetune.upper_model(model)
    acts = {}
    for i, name in enumerate(loaded):
        if name in ("train", "val"):
            print(f"lower-trunk activations of {name} and {hp.augmented_copies} re-acquired copies", flush=True)
            acts[name] = finetune.activation_bank(lower, load_photos(loaded[name].paths), loaded[name].images,
                                                  hp.augmented_copies, hp.seed + i)
    pooled = {name: finetune.pooled_from_activations(upper, bank) for name, bank in acts.items()}
    history, extras = fit_head_on_features(model, pooled["train"], loaded["train"].labels,
                                           pooled["val"], loaded["val"].labels, hp)
    history["fine_tune"] = finetune.fine_tune(
        model, acts["train"], loaded["train"].labels, acts["val"], loaded["val"].labels,
        epochs=hp.fine_tune_top_epochs, learning_rate=hp.fine_tune_learning_rate,
        consistency=hp.fine_tune_consistency, anchor=hp.fine_tune_anchor, seed=hp.seed)
    val_bank = finetune.pooled_from_activations(upper, acts["val"])
    weights, bias = model.get_layer(OUTPUT_LAYER).get_weights()
    head = platt_scaling(LinearHead(weights[:, 0].astype(np.float64), float(bias[0])),
                         val_bank[0], loaded["val"].labels)
    write_into(model, head)
    dims = val_bank.shape[-1]
    extras["val_pooled"] = (head.probabilities(val_bank.reshape(-1, dims)),
                            np.tile(loaded["val"].labels, len(val_bank)))
    print("fine-tuned head Platt-scaled on val", flush=True)
    return history, extras


def photo_bank(pooled, images: data_mod.LoadedImages, copies: int, seed: int,
               mirror: bool = False, photos: list | None = None) -> np.ndarray:
    """(1 + copies, N, D) pooled features of the loaded photographs and their re-acquired copies
    (with `mirror`, followed by the same views mirrored: features.feature_bank). `photos`: the
    photographs as features.load_photos decodes them, when the caller has them already (as the
    other banks below take them)."""
    from training.features import feature_bank, load_photos

    photos = load_photos(images.paths) if photos is None else photos
    print(f"trunk features of {len(photos)} photographs and {copies} re-acquired copies"
          f"{' (and their mirror images)' if mirror else ''}", flush=True)
    return feature_bank(pooled, photos, images.images, copies, seed, mirror=mirror)


def low_pixel_photo_bank(pooled, images: data_mod.LoadedImages, copies: int, seed: int, mirror: bool,
                         photos: list) -> np.ndarray:
    """photo_bank's layout for the photographs saved as smaller files (features.low_pixel_bank);
    `photos`: the photographs as features.load_photos decodes them."""
    from training.features import low_pixel_bank

    print(f"trunk features of {len(images.paths)} photographs as smaller files and {copies} re-acquired "
          "copies of each", flush=True)
    return low_pixel_bank(pooled, photos, copies, seed, images.images.shape[1], mirror=mirror)


def other_camera_bank(pooled, folder: Path | None, hp: Hyperparameters) -> np.ndarray | None:
    """The features of another hospital's normal discs in photo_bank's views (None: no folder, or the
    head is not penalised; training/other_camera.py)."""
    from training.other_camera import is_other_camera_folder, normals_bank

    if not (hp.reframing_penalty and hp.other_camera_weight and is_other_camera_folder(folder)):
        if folder is not None and not is_other_camera_folder(folder):
            print(f"{folder}: not another camera's folder (annotations.csv, splits.csv); not used", flush=True)
        return None
    return normals_bank(pooled, folder, hp.augmented_copies, hp.seed + 100, hp.image_size, mirror=hp.mirror_views)


def more_photographs(low_bank: np.ndarray | None, labels: np.ndarray, other: np.ndarray | None,
                     hp: Hyperparameters) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The head's fitting photographs beyond the split's own, as crossval's more_fit_bank gives them:
    (views, M, D), labels, weights: the photographs' smaller files (weight 1), then another hospital's
    normal discs (hp.other_camera_weight)."""
    parts = []
    if low_bank is not None:
        parts.append((low_bank, np.asarray(labels), np.ones(low_bank.shape[1])))
    if other is not None:
        parts.append((other, np.zeros(other.shape[1], int), np.full(other.shape[1], hp.other_camera_weight)))
    if not parts:
        return None
    return (np.concatenate([p[0] for p in parts], axis=1), np.concatenate([p[1] for p in parts]),
            np.concatenate([p[2] for p in parts]))


def spread_bank(pooled, images: data_mod.LoadedImages, bank: np.ndarray, seed: int, photos: list) -> np.ndarray:
    """(1 + REFRAMINGS, N, D): each photograph's own features (bank[0]) and its reframings', the views
    whose logit spread hp.reframing_penalty penalises (`photos`: as features.load_photos decodes them)."""
    from training.features import reframing_bank

    print(f"trunk features of {len(images.paths)} photographs' reframings", flush=True)
    return np.concatenate([bank[:1], reframing_bank(pooled, photos, seed)])


def fit_head_on_features(model, train_bank: np.ndarray, train_y: np.ndarray, val_bank: np.ndarray,
                         val_y: np.ndarray, hp: Hyperparameters,
                         train_widths: np.ndarray | None = None,
                         val_mirror: np.ndarray | None = None,
                         train_spread: np.ndarray | None = None,
                         more_train: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> tuple[dict, dict]:
    """The invariant head from feature banks (views, N, D): fitted on every view in train_bank
    (mirrored ones included), C chosen on val (clean and re-acquired), Platt-scaled on clean val,
    written into `model`'s dense unit; with `train_widths` (native pixel widths), each training
    photograph weighted against the size shortcut (hp.size_balance). With `val_mirror` (val_bank's
    views mirrored) and hp.mirror_tta, the model is served with mirror test-time augmentation
    (extras["mirror_tta"]), so the Platt scaling and the threshold's scores are the mean logit over
    each view and its mirror image. With `train_spread` (spread_bank's views of the training
    photographs) and hp.reframing_penalty, the head's logit variance across them is penalised
    (head.penalised_head), and the penalised head is also fitted on `more_train` (more_photographs:
    (views, M, D), labels, weights). Shared by the image path (fit_invariant_head) and the base
    set's stored features (training/base_set.py)."""
    from sklearn.metrics import log_loss, roc_auc_score

    from training.crossval import size_balance_weights
    from training.erasure import width_bins, within_class_erasure
    from training.head import (C_GRID, fit_head, penalised_head, platt_scaling, select_c, with_more_photographs,
                              write_into)

    dims = train_bank.shape[-1]
    x = train_bank.reshape(-1, dims)
    y = np.tile(train_y, len(train_bank))
    weights = None
    if train_widths is not None and hp.size_balance:
        weights = np.tile(size_balance_weights(train_widths, train_y, hp.size_balance, hp.size_balance_bin_px),
                          len(train_bank))
    erasure = None
    if train_widths is not None and hp.erase_acquisition_bin_px:
        erasure = within_class_erasure(x, np.tile(width_bins(train_widths, hp.erase_acquisition_bin_px),
                                                  (len(train_bank), 1)), y,
                                       max_directions=hp.erase_acquisition_directions)
        print(f"head: within-class acquisition information erased (native width in "
              f"{hp.erase_acquisition_bin_px}-px bins)", flush=True)

    def erased(features: np.ndarray) -> np.ndarray:
        return features if erasure is None else erasure.apply(features)

    x_fit = erased(x)
    val_sets = [(erased(val_bank[0]), val_y)]
    if len(val_bank) > 1:
        val_sets.append((erased(val_bank[1:].reshape(-1, dims)), np.tile(val_y, len(val_bank) - 1)))
    c, scores = select_c(x_fit, y, val_sets, grid=(hp.head_c,) if hp.head_c else C_GRID,
                         sample_weight=weights)
    mirror_tta = hp.mirror_tta and val_mirror is not None
    if hp.reframing_penalty and train_spread is not None:
        if weights is not None or erasure is not None:
            raise ValueError("--reframing-penalty does not combine with --size-balance or "
                             "--erase-acquisition-bin-px")
        fitted_bank, fitted_y, photo_weights = with_more_photographs(train_bank, train_y, more_train)
        if more_train is not None:
            print(f"head: also fitted on {more_train[0].shape[1]} more photographs (smaller files, another "
                  f"camera's normal discs; weight {more_train[2].sum():.0f} in all)", flush=True)
        fitted = penalised_head(fitted_bank, fitted_y, c, hp.reframing_penalty, train_spread,
                                photo_weights=photo_weights)
        print(f"head: logit variance across reframings penalised (alpha {hp.reframing_penalty:g})",
              flush=True)
    else:
        fitted = fit_head(x_fit, y, c, weights)
    head = platt_scaling(fitted, erased(val_bank[0]), val_y, erased(val_mirror[0]) if mirror_tta else None)
    if erasure is not None:
        head = erasure.fold_into(head)  # the dense unit reads raw features
    write_into(model, head)
    metrics_mod.print_metric("epoch", 1)  # progress (issue 8): the head is fitted in one pass
    for name, (features, labels) in (("train", (x, y)), ("val", (val_bank[0], val_y))):
        probabilities = head.probabilities(features)
        metrics_mod.print_metric(f"{name}_loss", log_loss(labels, probabilities, labels=[0, 1]))
        metrics_mod.print_metric(f"{name}_auc", roc_auc_score(labels, probabilities))
    for grid_c, score in scores.items():
        print(f"  C={grid_c:g}: mean val AUC (clean, re-acquired) {score:.4f}", flush=True)
    over_mirror = " (mean logit over each view and its mirror image)" if mirror_tta else ""
    print(f"head: C={c:g}, Platt-scaled on val{over_mirror}", flush=True)
    history = {"c": list(scores), "val_auc": list(scores.values())}
    # The threshold is chosen on val as photographed AND re-acquired: it must keep its
    # sensitivity whatever the camera (measured: test specificity 0.54 -> 0.70 at the same
    # sensitivity on the W=112 bank, training/experiments/exp.py).
    val_scores = (head.probabilities_over_mirror(val_bank.reshape(-1, dims), val_mirror.reshape(-1, dims))
                  if mirror_tta else head.probabilities(val_bank.reshape(-1, dims)))
    extras = {"c": c, "val_pooled": (val_scores, np.tile(val_y, len(val_bank))), "mirror_tta": mirror_tta}
    return history, extras


def _callbacks(hp: Hyperparameters, checkpoint: Path, patience: int) -> list:
    import keras

    class MetricLines(keras.callbacks.Callback):
        """One `METRIC name=value` line per metric and epoch, for SageMaker's regexes."""

        def on_epoch_end(self, epoch, logs=None):
            metrics_mod.print_metric("epoch", epoch + 1)  # progress (issue 8): epoch of `epochs`
            for key in ("loss", "auc", "val_loss", "val_auc"):
                if logs and key in logs:
                    name = key if key.startswith("val_") else f"train_{key}"
                    metrics_mod.print_metric(name, float(logs[key]))

    return [
        keras.callbacks.EarlyStopping(monitor="val_auc", mode="max", patience=patience,
                                      restore_best_weights=True),
        keras.callbacks.ModelCheckpoint(str(checkpoint), monitor="val_auc", mode="max", save_best_only=True),
        keras.callbacks.ReduceLROnPlateau(monitor="val_auc", mode="max", factor=0.3,
                                          patience=max(2, patience // 3), min_lr=1e-6),
        MetricLines(),
    ]


def _class_weight(labels: np.ndarray) -> dict[int, float] | None:
    """Balanced class weights; none when a class is missing (a few uploads of one label can do
    that): the job still trains, and the gate judges the result."""
    positives = float(labels.mean()) if len(labels) else 0.0
    if not 0.0 < positives < 1.0:
        return None
    return {0: 0.5 / (1 - positives), 1: 0.5 / positives}


def fit_end_to_end(model, train_set, val_set, hp: Hyperparameters, checkpoint_dir: Path):
    """Augment every batch on the fly and back-propagate into the trainable trunk blocks."""
    import keras
    import tensorflow as tf

    from training.augment import make_augmenter

    augment = make_augmenter(hp.seed, acquisition_probability=hp.acquisition_probability)
    train_ds = (tf.data.Dataset.from_tensor_slices((train_set.images, train_set.labels.astype(np.float32)))
                .shuffle(len(train_set.labels), seed=hp.seed, reshuffle_each_iteration=True)
                .batch(hp.batch_size)
                .map(lambda x, y: (augment(x), y), num_parallel_calls=tf.data.AUTOTUNE)
                .prefetch(tf.data.AUTOTUNE))
    val_ds = tf.data.Dataset.from_tensor_slices(
        (val_set.images, val_set.labels.astype(np.float32))).batch(hp.batch_size)
    model.compile(optimizer=keras.optimizers.Adam(hp.learning_rate),
                  loss="binary_crossentropy", metrics=[keras.metrics.AUC(name="auc")])
    return model.fit(train_ds, validation_data=val_ds, epochs=hp.epochs,
                     class_weight=_class_weight(train_set.labels),
                     callbacks=_callbacks(hp, checkpoint_dir / "best.keras", hp.patience), verbose=2)


def evaluate_and_export(model, loaded: dict, history: dict, hp: Hyperparameters,
                        model_dir: Path, report_dir: Path, elapsed_s: float, extras: dict | None = None) -> dict:
    from screening.inference import GlaucomaModel, mean_over_mirror
    from training import plots, robustness
    from training.export import export_tflite, keras_probabilities
    from training.head import expected_calibration_error, reliability_table

    extras = extras or {}
    model_dir.mkdir(parents=True, exist_ok=True)
    report_dir.mkdir(parents=True, exist_ok=True)
    val = loaded["val"]
    mirror_tta = bool(extras.get("mirror_tta"))

    def probabilities(images: np.ndarray) -> np.ndarray:
        """As the exported model serves them (model.json test_time_augmentation)."""
        p = keras_probabilities(model, images)
        return mean_over_mirror(p, keras_probabilities(model, images[:, :, ::-1])) if mirror_tta else p

    val_scores = probabilities(val.images)
    if "val_pooled" in extras:
        pooled_scores, pooled_labels = extras["val_pooled"]
        threshold = metrics_mod.choose_threshold(pooled_labels, pooled_scores, hp.min_sensitivity)
        threshold_rule = (f"Youden-optimal on val (as photographed and {hp.augmented_copies} re-acquired "
                          f"copies) with sensitivity >= {hp.min_sensitivity}"
                          + (", each scored as the mean logit over it and its mirror image" if mirror_tta else ""))
    else:
        threshold = metrics_mod.choose_threshold(val.labels, val_scores, hp.min_sensitivity)
        threshold_rule = f"Youden-optimal on val with sensitivity >= {hp.min_sensitivity}"
    report_split = "test" if "test" in loaded else "val"
    evaluated = loaded[report_split]
    scores = probabilities(evaluated.images)
    report = metrics_mod.classification_report(evaluated.labels, scores, threshold)
    version = hp.model_version or datetime.now(timezone.utc).strftime("glaucoma-%Y%m%d-%H%M%S")

    model.save(model_dir / KERAS_FILE, include_optimizer=False)
    export_tflite(model, model_dir / "glaucoma.tflite")
    card = {
        "version": version,
        "threshold": threshold,
        "input_size": hp.image_size,
        "input_contract": "colour fundus photograph cropped and centred on the optic disc",
        "test_time_augmentation": "mirror" if mirror_tta else "none",
        # Which images the metrics come from: only models scored on the same set are compared.
        "evaluation_set": evaluation_fingerprint(evaluated.paths),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "metrics": {"split": report_split, **{k: report[k] for k in (
            "roc_auc", "accuracy", "sensitivity", "specificity", "precision", "f1",
            "sensitivity_at_95_specificity", "n")}},
    }
    (model_dir / "model.json").write_text(json.dumps(card, indent=2) + "\n")

    # The invariance suite runs the exported file as serving does (LiteRT, preprocess_bytes).
    served = GlaucomaModel(model_dir)
    served_scores = served.probabilities_and_cams(evaluated.images)[0]
    print(f"invariance suite on the {report_split} split (served model):", flush=True)
    invariance = robustness.invariance_report(
        lambda x: np.concatenate([served.probabilities_and_cams(x[i:i + 32])[0] for i in range(0, len(x), 32)]),
        evaluated.paths, evaluated.labels, served_scores, threshold, size=hp.image_size,
        variants=robustness.selected_variants(hp.invariance_variants))
    card["metrics"]["roc_auc_grey"] = invariance["grey"]["roc_auc"]
    card["metrics"]["roc_auc_colour_shift"] = invariance["colour_shift"]["roc_auc"]
    card["metrics"]["invariance_delta_p_p95_max"] = max(
        v["delta_p_p95"] for v in invariance.values() if v["target"])
    card["metrics"]["ece"] = expected_calibration_error(evaluated.labels, scores)
    (model_dir / "model.json").write_text(json.dumps(card, indent=2) + "\n")

    metrics_json = {
        "model_version": version,
        "threshold": threshold,
        "threshold_rule": threshold_rule,
        "reported_on": report_split,
        "val": metrics_mod.classification_report(val.labels, val_scores, threshold),
        report_split: report,
        "calibration": {
            "method": "Platt scaling on val" if "c" in extras else "none",
            "ece_val": expected_calibration_error(val.labels, val_scores),
            f"ece_{report_split}": expected_calibration_error(evaluated.labels, scores),
            f"reliability_{report_split}": reliability_table(evaluated.labels, scores),
        },
        "invariance": invariance,
        "cross_validation": extras.get("cross_validation"),
        "data": {name: {"images": int(len(s.labels)), "glaucoma": int(s.labels.sum()),
                        "skipped": len(s.skipped)} for name, s in loaded.items()},
        "hyperparameters": hp.__dict__,
        "head_c": extras.get("c"),
        "epochs_run": len(history.get("loss", [])),
        "training_seconds": round(elapsed_s, 1),
        "history": history,
    }
    (report_dir / "metrics.json").write_text(json.dumps(metrics_json, indent=2))
    plots.roc_plot(evaluated.labels, scores, report["roc_auc"], threshold, report_dir / "roc.png")
    plots.pr_plot(evaluated.labels, scores, report_dir / "precision_recall.png")
    plots.history_plot(history, report_dir / "history.png")
    plots.confusion_plot(report["confusion_matrix"], report_dir / "confusion_matrix.png")
    plots.reliability_plot(evaluated.labels, scores, metrics_json["calibration"][f"ece_{report_split}"],
                           report_dir / "reliability.png")
    plots.invariance_plot(invariance, report_dir / "invariance.png")

    prefix = "test" if report_split == "test" else "val"
    metrics_mod.print_metric("threshold", threshold)
    for key in ("roc_auc", "accuracy", "sensitivity", "specificity", "precision", "f1",
                "sensitivity_at_95_specificity"):
        name = f"{prefix}_{'auc' if key == 'roc_auc' else key}"
        metrics_mod.print_metric(name, report[key])
    metrics_mod.print_metric(f"{prefix}_auc_grey", invariance["grey"]["roc_auc"])
    metrics_mod.print_metric(f"{prefix}_auc_colour_shift", invariance["colour_shift"]["roc_auc"])
    return metrics_json


def evaluation_fingerprint(paths: list[Path]) -> str:
    names = "\n".join(sorted(p.name for p in paths))
    return hashlib.sha256(names.encode()).hexdigest()[:16]


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["train"]:  # SageMaker starts training images as `docker run <image> train`
        argv = argv[1:]
    try:
        hp, args = parse_hyperparameters(argv)
        severity_data = args.data or args.train
        if severity_data is not None and (Path(severity_data) / "annotations.csv").is_file():
            # Full-field photographs with expert severities (CSDI's layout): the severity recipe
            # of training/cataract.py, same entry point and model folder.
            from training import cataract

            extra = ["--model-version", hp.model_version] if hp.model_version else []
            return cataract.main(["--data", str(severity_data), "--model-dir", str(args.model_dir), *extra])
        # --- issue 8: condition, labelled uploads, the promotion gate (training/gate.py) ---
        from training import gate
        class_names = gate.configure_classes(hp.condition, hp.positive_class)
        uploads = gate.read_uploads(args.uploads, class_names, hp.upload_holdout_fraction)
        splits = gate.job_splits(resolve_splits, args, hp, uploads)
        metrics_mod.print_metric("epochs", hp.epochs)
        # ---
        started = time.monotonic()
        model, loaded, history, extras = gate.fit(train, hp, splits, args.checkpoint_dir, uploads,  # issue 8
                                                  args.other_camera)
        evaluate_and_export(model, loaded, history, hp, args.model_dir, args.output_data_dir,
                            time.monotonic() - started, extras)
        gate.run_gate(args.model_dir, args.champion,  # issue 8: judge the challenger in this job
                      gate.evaluation_samples(splits, uploads),
                      hp.gate_auc_margin, hp.gate_min_sensitivity, hp.condition, class_names,
                      args.output_data_dir)
        print(f"model written to {args.model_dir}, report to {args.output_data_dir}", flush=True)
        return 0
    except Exception as exc:  # the job must fail loudly, with its reason on file
        reason = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
        where = write_failure(reason)
        print(f"training failed: {reason}" + (f" (written to {where})" if where else ""),
              file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
