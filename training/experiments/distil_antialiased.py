"""Retrain the blur-pooled trunk's filters around its low-pass, without labels (card, experiment 37).

    ACRIMA_DIR=... PYTHONPATH=functions:. python training/experiments/distil_antialiased.py \
        OUT.npz [EPOCHS] [LEARNING_RATE] [AUG_WEIGHT]
    PYTHONPATH=functions:. python training/experiments/distil_antialiased.py --serve OUT.npz \
        training.train --antialias-from-block -1 ...   # training.train on that trunk

Row 32's blur-pooled trunk halved how far a one-pixel shift moves the logit and cut the
resampling variants' tail, but lost accuracy, because the ImageNet filters were never trained
around the low-pass (Zhang 2019 fine-tunes the whole network on ImageNet, which 2 CPU cores
cannot). Here the ImageNet trunk itself is the teacher, on ACRIMA's training photographs, no
label used: the blur-pooled student (every trunk convolution trainable, batch norm frozen at the
ImageNet statistics, as in serving) learns
- to reproduce the teacher's feature maps at the blocks the head reads (4, 7, 10) on each clean
  photograph (what the downstream filters expect, so accuracy comes back), and
- to give a random re-acquisition of the photograph (training/acquisition.py: blur, JPEG,
  framing, rotation, colour) the teacher's pooled features of the clean photograph (what the
  head reads, so the acquisition stops moving it).
Each block's maps are compared in units of the teacher's per-channel spread on the training
photographs. The result is a trunk file in convert_backbone's format.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from training import data as data_mod, network
from training.experiments.run_target import run_target
from training.features import augmented_inputs, load_photos
from training.finetune import _block_output

SEED = 42
BATCH = 16
VIEWS = 4  # re-acquisitions drawn per photograph (one is used per photograph and epoch)


def tapped(antialias_from_block: int, weights: Path) -> keras.Model:
    """Photographs -> the feature maps of network.FEATURE_BLOCKS."""
    model = network.build_classifier(dropout=0.0, backbone_weights=weights,
                                     antialias_from_block=antialias_from_block)
    outputs = [_block_output(model, b) for b in network.FEATURE_BLOCKS]
    return keras.Model(model.inputs, outputs)


def trunk_weights(model: keras.Model) -> dict[str, np.ndarray]:
    """The trunk's layers in convert_backbone's format ("layer:index")."""
    saved = {}
    for layer in model.layers:
        if network._trunk_block(layer.name) != float("inf") and layer.weights:
            for i, w in enumerate(layer.get_weights()):
                saved[f"{layer.name}:{i}"] = w
    return saved


def distil(out: Path, epochs: int, learning_rate: float, aug_weight: float) -> None:
    keras.utils.set_random_seed(SEED)
    splits = data_mod.discover_splits(Path(os.environ["ACRIMA_DIR"]))
    imagenet = network.backbone_weights_path()
    teacher = tapped(network.NO_ANTIALIAS, imagenet)
    student = tapped(-1, imagenet)
    for layer in student.layers:  # every convolution learns; batch norm keeps ImageNet's statistics
        layer.trainable = not isinstance(layer, keras.layers.BatchNormalization) and bool(layer.weights) \
            and network._trunk_block(layer.name) != float("inf") and not network.is_fixed_filter(layer.name)

    def inputs_of(split: str) -> tuple[np.ndarray, list]:
        loaded = data_mod.load_images(splits[split])
        photos = load_photos(loaded.paths)
        return loaded.images, photos

    started = time.monotonic()
    clean, photos = inputs_of("train")
    views = np.stack([(augmented_inputs(photos, SEED * 31 + v) * 255).round().astype(np.uint8)
                      for v in range(VIEWS)], axis=1)  # (N, VIEWS, S, S, 3)
    val_clean, val_photos = inputs_of("val")
    val_view = augmented_inputs(val_photos, SEED * 31 + 99)
    print(f"inputs: {len(clean)} train photographs x {VIEWS} views, {len(val_clean)} val "
          f"({time.monotonic() - started:.0f} s)", flush=True)
    maps = [m.astype(np.float16) for m in teacher.predict(clean, batch_size=32, verbose=0)]
    spread = [np.maximum(m.astype(np.float32).std(axis=(0, 1, 2)), 1e-3) for m in maps]
    pooled_spread = [np.maximum(m.astype(np.float32).mean(axis=(1, 2)).std(axis=0), 1e-3) for m in maps]
    val_maps = teacher.predict(val_clean, batch_size=32, verbose=0)
    scale = [tf.constant(1.0 / s) for s in spread]
    pooled_scale = [tf.constant(1.0 / s) for s in pooled_spread]
    optimiser = keras.optimizers.Adam(learning_rate)
    trainable = student.trainable_weights

    @tf.function
    def step(x_clean, x_view, targets):
        with tf.GradientTape() as tape:
            got_clean = student(x_clean, training=False)
            got_view = student(x_view, training=False)
            map_loss = tf.add_n([tf.reduce_mean(tf.square((g - tf.cast(t, tf.float32)) * s))
                                 for g, t, s in zip(got_clean, targets, scale)]) / len(targets)
            view_loss = tf.add_n([
                tf.reduce_mean(tf.square((tf.reduce_mean(g, axis=[1, 2])
                                          - tf.reduce_mean(tf.cast(t, tf.float32), axis=[1, 2])) * s))
                for g, t, s in zip(got_view, targets, pooled_scale)]) / len(targets)
            loss = map_loss + aug_weight * view_loss
        optimiser.apply_gradients(zip(tape.gradient(loss, trainable), trainable))
        return map_loss, view_loss

    def pooled_distance(got: list[np.ndarray]) -> float:
        """Mean squared distance of pooled features to the teacher's on clean val, in spreads."""
        return float(np.mean([np.mean(((g.mean(axis=(1, 2)) - t.mean(axis=(1, 2))) / s) ** 2)
                              for g, t, s in zip(got, val_maps, pooled_spread)]))

    def validate() -> tuple[float, float]:
        """Val: the clean maps' and a re-acquisition's pooled features' distance to the teacher's."""
        got = student.predict(val_clean, batch_size=32, verbose=0)
        maps_d = np.mean([np.mean(((g - t) / s) ** 2) for g, t, s in zip(got, val_maps, spread)])
        return float(maps_d), pooled_distance(student.predict(val_view, batch_size=32, verbose=0))

    print("val, the teacher's own re-acquisition distance: %.4f"
          % pooled_distance(teacher.predict(val_view, batch_size=32, verbose=0)), flush=True)
    print("epoch 0: val map distance %.4f, re-acquisition distance %.4f" % validate(), flush=True)
    rng = np.random.default_rng(SEED)
    for epoch in range(1, epochs + 1):
        order = rng.permutation(len(clean))
        losses = []
        for start in range(0, len(order), BATCH):
            idx = order[start:start + BATCH]
            pick = views[idx, rng.integers(0, VIEWS, len(idx))].astype(np.float32) / 255.0
            targets = [m[idx] for m in maps]
            losses.append([float(v) for v in step(clean[idx], pick, targets)])
        m, v = np.mean(losses, axis=0)
        print(f"epoch {epoch}: train map {m:.4f}, re-acquisition {v:.4f}; val map distance "
              "%.4f, re-acquisition distance %.4f" % validate()
              + f" ({time.monotonic() - started:.0f} s)", flush=True)
        np.savez(out, **trunk_weights(student))
    print(f"trunk written to {out}")


def use_trunk(trunk: Path) -> None:
    """From here on, every model this process builds loads `trunk` as the Lite0 trunk's weights."""
    network.backbone_weights_path = lambda backbone=network.DEFAULT_BACKBONE: Path(trunk)


def serve(trunk: Path, target: str, args: list[str]) -> None:
    """Run `target` (training.train, or a script) with `trunk` as the Lite0 trunk's weights."""
    use_trunk(trunk)
    run_target(target, args)


if __name__ == "__main__":
    if sys.argv[1] == "--serve":
        serve(Path(sys.argv[2]), sys.argv[3], sys.argv[4:])
    else:
        distil(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 8,
               float(sys.argv[3]) if len(sys.argv) > 3 else 3e-4,
               float(sys.argv[4]) if len(sys.argv) > 4 else 1.0)
