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


def train(hp: Hyperparameters, splits: dict, checkpoint_dir: Path):
    """Load data with the serving preprocessing, build the model, fit it; returns (model, data, history)."""
    import keras

    from training.network import DEFAULT_BACKBONE_WEIGHTS, TRUNK_BLOCKS, build_classifier

    keras.utils.set_random_seed(hp.seed)
    loaded = {name: data_mod.load_images(files, size=hp.image_size) for name, files in splits.items()}
    for name, images in loaded.items():
        print(f"{name}: {len(images.labels)} images ({int(images.labels.sum())} glaucoma), "
              f"{len(images.skipped)} skipped", flush=True)
    model = build_classifier(input_size=hp.image_size, cam_channels=hp.cam_channels,
                             dropout=hp.dropout, fine_tune_from_block=hp.fine_tune_from_block,
                             backbone_weights=DEFAULT_BACKBONE_WEIGHTS if hp.pretrained else None)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    frozen_trunk = hp.pretrained and hp.fine_tune_from_block >= TRUNK_BLOCKS and not hp.cam_channels
    fit = fit_head_on_cached_features if frozen_trunk else fit_end_to_end
    history = fit(model, loaded["train"], loaded["val"], hp, checkpoint_dir)
    return model, loaded, {k: [float(v) for v in vals] for k, vals in history.history.items()}


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


def _class_weight(labels: np.ndarray) -> dict[int, float]:
    positives = float(labels.mean())
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


def fit_head_on_cached_features(model, train_set, val_set, hp: Hyperparameters, checkpoint_dir: Path):
    """Frozen trunk: run it once per augmented copy of the training set, then fit only
    the dense head on the pooled features. Same model and augmentation as end to
    end, at a fraction of the CPU time, so many more epochs fit in the budget."""
    import keras

    from training.augment import make_augmenter
    from training.network import OUTPUT_LAYER, POOL_LAYER

    pooled = keras.Model(model.inputs, model.get_layer(POOL_LAYER).output)
    augment = make_augmenter(hp.seed, acquisition_probability=hp.acquisition_probability)
    started = time.monotonic()
    features = [pooled.predict(train_set.images, batch_size=hp.batch_size, verbose=0)]
    for _ in range(hp.augmented_copies):
        copy = np.concatenate([np.asarray(augment(train_set.images[i:i + hp.batch_size]))
                               for i in range(0, len(train_set.images), hp.batch_size)])
        features.append(pooled.predict(copy, batch_size=hp.batch_size, verbose=0))
    x_train = np.concatenate(features)
    y_train = np.tile(train_set.labels, len(features)).astype(np.float32)
    x_val = pooled.predict(val_set.images, batch_size=hp.batch_size, verbose=0)
    print(f"trunk features: {len(x_train)} training vectors ({hp.augmented_copies} augmented copies) "
          f"in {time.monotonic() - started:.0f} s", flush=True)

    inputs = keras.Input(x_train.shape[1:], name="pooled_features")
    head = keras.Model(inputs, model.get_layer(OUTPUT_LAYER)(model.get_layer("dropout")(inputs)))
    head.compile(optimizer=keras.optimizers.Adam(hp.learning_rate),
                 loss="binary_crossentropy", metrics=[keras.metrics.AUC(name="auc")])
    return head.fit(x_train, y_train, validation_data=(x_val, val_set.labels.astype(np.float32)),
                    batch_size=hp.batch_size, epochs=hp.epochs, shuffle=True,
                    class_weight=_class_weight(train_set.labels),
                    callbacks=_callbacks(hp, checkpoint_dir / "best_head.keras", hp.patience), verbose=2)


def evaluate_and_export(model, loaded: dict, history: dict, hp: Hyperparameters,
                        model_dir: Path, report_dir: Path, elapsed_s: float) -> dict:
    from training import plots, robustness
    from training.export import export_tflite, keras_probabilities

    model_dir.mkdir(parents=True, exist_ok=True)
    report_dir.mkdir(parents=True, exist_ok=True)
    val = loaded["val"]
    val_scores = keras_probabilities(model, val.images)
    threshold = metrics_mod.choose_threshold(val.labels, val_scores, hp.min_sensitivity)
    report_split = "test" if "test" in loaded else "val"
    evaluated = loaded[report_split]
    scores = keras_probabilities(model, evaluated.images)
    report = metrics_mod.classification_report(evaluated.labels, scores, threshold)
    robust = {name: metrics_mod.classification_report(
        evaluated.labels, keras_probabilities(model, transform(evaluated.images)), threshold)
        for name, transform in robustness.VARIANTS.items()}

    version = hp.model_version or datetime.now(timezone.utc).strftime("glaucoma-%Y%m%d-%H%M%S")
    metrics_json = {
        "model_version": version,
        "threshold": threshold,
        "threshold_rule": f"Youden-optimal on val with sensitivity >= {hp.min_sensitivity}",
        "reported_on": report_split,
        "val": metrics_mod.classification_report(val.labels, val_scores, threshold),
        report_split: report,
        "robustness": {name: {"roc_auc": r["roc_auc"], "sensitivity": r["sensitivity"],
                              "specificity": r["specificity"]} for name, r in robust.items()},
        "data": {name: {"images": int(len(s.labels)), "glaucoma": int(s.labels.sum()),
                        "skipped": len(s.skipped)} for name, s in loaded.items()},
        "hyperparameters": hp.__dict__,
        "epochs_run": len(history.get("loss", [])),
        "training_seconds": round(elapsed_s, 1),
        "history": history,
    }
    (report_dir / "metrics.json").write_text(json.dumps(metrics_json, indent=2))
    plots.roc_plot(evaluated.labels, scores, report["roc_auc"], threshold, report_dir / "roc.png")
    plots.pr_plot(evaluated.labels, scores, report_dir / "precision_recall.png")
    plots.history_plot(history, report_dir / "history.png")
    plots.confusion_plot(report["confusion_matrix"], report_dir / "confusion_matrix.png")

    model.save(model_dir / KERAS_FILE, include_optimizer=False)
    export_tflite(model, model_dir / "glaucoma.tflite")
    card = {
        "version": version,
        "threshold": threshold,
        "input_size": hp.image_size,
        "input_contract": "colour fundus photograph cropped and centred on the optic disc",
        # Which images the metrics come from: only models scored on the same set are compared.
        "evaluation_set": evaluation_fingerprint(evaluated.paths),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "metrics": {"split": report_split, **{k: report[k] for k in (
            "roc_auc", "accuracy", "sensitivity", "specificity", "precision", "f1",
            "sensitivity_at_95_specificity", "n")},
            "roc_auc_grey": robust["grey"]["roc_auc"],
            "roc_auc_colour_shift": robust["colour_shift"]["roc_auc"]},
    }
    (model_dir / "model.json").write_text(json.dumps(card, indent=2) + "\n")

    prefix = "test" if report_split == "test" else "val"
    metrics_mod.print_metric("threshold", threshold)
    for key in ("roc_auc", "accuracy", "sensitivity", "specificity", "precision", "f1",
                "sensitivity_at_95_specificity"):
        name = f"{prefix}_{'auc' if key == 'roc_auc' else key}"
        metrics_mod.print_metric(name, report[key])
    metrics_mod.print_metric(f"{prefix}_auc_grey", robust["grey"]["roc_auc"])
    metrics_mod.print_metric(f"{prefix}_auc_colour_shift", robust["colour_shift"]["roc_auc"])
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
        # --- issue 8: condition, labelled uploads, the promotion gate (training/gate.py) ---
        from training import gate
        class_names = gate.configure_classes(hp.condition, hp.positive_class)
        uploads = gate.read_uploads(args.uploads, class_names, hp.upload_holdout_fraction)
        splits = gate.job_splits(resolve_splits, args, hp, uploads)
        metrics_mod.print_metric("epochs", hp.epochs)
        # ---
        started = time.monotonic()
        model, loaded, history = gate.fit(train, hp, splits, args.checkpoint_dir, uploads)  # issue 8: base set
        evaluate_and_export(model, loaded, history, hp, args.model_dir, args.output_data_dir,
                            time.monotonic() - started)
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
