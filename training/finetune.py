"""Fine-tuning the top of the trunk (blocks 5-10) for invariance, affordable on 2 CPU cores.

Why this recipe:
- with the trunk frozen, a linear head can only average out how much the trunk's
  features move under blur, JPEG, rotation, crops and exposure (p95 |dp| 0.17-0.83,
  models/MODEL_CARD.md); the top blocks can learn to stop moving;
- the augmentation has to act on the photograph (rotation, crop, blur, JPEG), so it cannot
  be applied to cached features. Instead every photograph and `copies` random
  re-acquisitions of it (training/acquisition.py) go once through the frozen lower trunk
  (stem to block `CUT_BLOCK`, ~24 ms an image), and those activations are cached; an epoch
  then runs only blocks 5-10 and the head on a random pair of copies of each photograph;
- loss: class-balanced cross-entropy on both copies plus a consistency term, the squared
  difference of their probabilities (what the invariance suite measures); with `anchor`, each
  copy's probability is pulled to the starting model's on the clean photograph instead, a fixed
  target: two copies can agree by both drifting towards the middle, which a fixed target forbids;
- batch norm stays frozen (ImageNet statistics; batches of 32 are too small to re-estimate
  them), low learning rate, the head starts from the fitted linear head, and the epoch is
  chosen on val (clean and re-acquired copies).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

CUT_BLOCK = 4  # cached: the output of block 4 (28x28x40); blocks 5.. are fine-tuned


def _block_output(model, block: int):
    from keras import layers

    try:
        return model.get_layer(f"block{block}_add").output
    except ValueError:
        return model.get_layer(f"block{block}_project_bn").output


def lower_model(model, cut: int = CUT_BLOCK):
    """Image -> the output of block `cut` (frozen, never trained here)."""
    import keras

    return keras.Model(model.inputs, _block_output(model, cut))


def upper_model(model, cut: int = CUT_BLOCK):
    """Block `cut`'s output -> pooled features (GAP input of the dense unit), sharing the
    classifier's layers (weights trained here are the classifier's own)."""
    import keras

    from training.network import POOL_LAYER

    return keras.Model(_block_output(model, cut), model.get_layer(POOL_LAYER).output)


def activation_bank(lower, photos: list, clean_inputs: np.ndarray, copies: int, seed: int,
                    batch_size: int = 32, log=print) -> np.ndarray:
    """(1 + copies, N, h, w, c) float16 lower-trunk activations: clean first, then one
    row per re-acquired copy (the same draws as training/features.py feature_bank)."""
    from training.features import augmented_inputs

    started = time.monotonic()
    rows = [lower.predict(clean_inputs, batch_size=batch_size, verbose=0).astype(np.float16)]
    with ThreadPoolExecutor(max_workers=1) as prepare:  # augment copy c+1 while the trunk runs copy c
        pending = prepare.submit(augmented_inputs, photos, seed * 1000, clean_inputs.shape[1]) if copies else None
        for c in range(copies):
            inputs = pending.result()
            if c + 1 < copies:
                pending = prepare.submit(augmented_inputs, photos, seed * 1000 + c + 1, clean_inputs.shape[1])
            rows.append(lower.predict(inputs, batch_size=batch_size, verbose=0).astype(np.float16))
            log(f"  activations: copy {c + 1}/{copies} of {len(photos)} photographs "
                f"({time.monotonic() - started:.0f} s)")
    return np.stack(rows)


def pooled_from_activations(upper, bank: np.ndarray, batch_size: int = 128) -> np.ndarray:
    """(1 + copies, N, D) pooled features of an activation bank."""
    k, n = bank.shape[:2]
    flat = bank.reshape(k * n, *bank.shape[2:])
    pooled = np.concatenate([upper(flat[i:i + batch_size].astype(np.float32), training=False).numpy()
                             for i in range(0, len(flat), batch_size)])
    return pooled.reshape(k, n, -1)


def fine_tune(model, train_bank: np.ndarray, train_y: np.ndarray, val_bank: np.ndarray, val_y: np.ndarray,
              epochs: int = 6, learning_rate: float = 1e-4, consistency: float = 1.0,
              from_block: int = CUT_BLOCK + 1, batch_size: int = 32, seed: int = 42,
              keep_best: bool = True, anchor: bool = False, log=print) -> dict:
    """Train blocks `from_block`.. and the dense unit on random pairs of cached copies;
    keep the epoch with the best mean val AUC (clean, re-acquired), or the last one when not
    `keep_best`. With `anchor`, the consistency target is the starting model's probability on
    the clean photograph (train_bank[0]). Returns the history."""
    import keras
    import tensorflow as tf
    from sklearn.metrics import roc_auc_score

    from training.network import OUTPUT_LAYER, _trunk_block, is_fixed_filter

    upper = upper_model(model)
    dense = model.get_layer(OUTPUT_LAYER)
    trainable = []
    for layer in upper.layers:
        is_bn = isinstance(layer, keras.layers.BatchNormalization)
        train_it = not is_bn and not is_fixed_filter(layer.name) and _trunk_block(layer.name) >= from_block
        layer.trainable = train_it
        if train_it:
            trainable.extend(layer.trainable_weights)
    dense.trainable = True
    variables = trainable + dense.trainable_weights
    optimizer = keras.optimizers.Adam(learning_rate)
    positives = float(np.mean(train_y))
    class_w = tf.constant([0.5 / (1 - positives), 0.5 / positives], tf.float32)
    kernel, bias = dense.kernel, dense.bias
    teacher = np.zeros(len(train_y), np.float32)
    if anchor:  # the starting model's p on each clean photograph, fixed for the whole run
        clean_logits = (pooled_from_activations(upper, train_bank[:1])[0] @ kernel.numpy()[:, 0]
                        + float(bias.numpy()[0]))
        teacher = (1 / (1 + np.exp(-clean_logits))).astype(np.float32)

    @tf.function(reduce_retracing=True)
    def step(a, b, y, target):
        with tf.GradientTape() as tape:
            both = upper(tf.concat([a, b], 0), training=False)  # frozen BN, no dropout
            logits = tf.squeeze(tf.matmul(both, kernel), -1) + bias[0]
            yy = tf.concat([y, y], 0)
            weights = tf.gather(class_w, tf.cast(yy, tf.int32))
            ce = tf.reduce_mean(weights * tf.nn.sigmoid_cross_entropy_with_logits(labels=yy, logits=logits))
            p = tf.sigmoid(logits)
            half = tf.shape(a)[0]
            if anchor:
                gap = tf.reduce_mean(tf.square(p - tf.concat([target, target], 0)))
            else:
                gap = tf.reduce_mean(tf.square(p[:half] - p[half:]))
            loss = ce + consistency * gap
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables))
        return ce, gap

    def val_score() -> tuple[float, float, np.ndarray]:
        pooled = pooled_from_activations(upper, val_bank)
        logits = pooled @ kernel.numpy()[:, 0] + float(bias.numpy()[0])
        clean = roc_auc_score(val_y, logits[0])
        reacquired = roc_auc_score(np.tile(val_y, len(logits) - 1), logits[1:].ravel())
        p = 1 / (1 + np.exp(-logits))
        dp95 = float(np.percentile(np.abs(p[1:] - p[0]), 95))
        return (clean + reacquired) / 2, dp95, pooled

    rng = np.random.default_rng(seed)
    copies, n = train_bank.shape[:2]
    best_score, best_dp = val_score()[:2]
    best = [v.numpy() for v in variables]
    history = {"epoch": [0], "val_auc": [best_score], "val_delta_p_p95": [best_dp], "train_ce": [None],
               "train_gap": [None], "seconds": [0.0]}
    log(f"  fine-tune epoch 0: val AUC (clean, re-acquired) {best_score:.4f}, val p95 |dp| {best_dp:.3f}")
    started = time.monotonic()
    best_epoch = 0
    for epoch in range(1, epochs + 1):
        order = rng.permutation(n)
        ces, gaps = [], []
        for i in range(0, n, batch_size):
            idx = order[i:i + batch_size]
            first = rng.integers(0, copies, len(idx))
            second = (first + rng.integers(1, copies, len(idx))) % copies  # a different copy
            a = train_bank[first, idx].astype(np.float32)
            b = train_bank[second, idx].astype(np.float32)
            ce, gap = step(tf.constant(a), tf.constant(b), tf.constant(train_y[idx], tf.float32),
                           tf.constant(teacher[idx]))
            ces.append(float(ce))
            gaps.append(float(gap))
        score, dp95, _ = val_score()
        history["epoch"].append(epoch)
        history["val_auc"].append(score)
        history["val_delta_p_p95"].append(dp95)
        history["train_ce"].append(float(np.mean(ces)))
        history["train_gap"].append(float(np.mean(gaps)))
        history["seconds"].append(round(time.monotonic() - started, 1))
        log(f"  fine-tune epoch {epoch}: train CE {np.mean(ces):.4f} consistency {np.mean(gaps):.4f}; "
            f"val AUC (clean, re-acquired) {score:.4f}, val p95 |dp| {dp95:.3f} "
            f"({time.monotonic() - started:.0f} s)")
        if score >= best_score or not keep_best:
            best_score, best_epoch = score, epoch
            best = [v.numpy() for v in variables]
    for v, value in zip(variables, best):
        v.assign(value)
    history["best_epoch"] = best_epoch
    log(f"  fine-tune: kept epoch {best_epoch} (val AUC {best_score:.4f})")
    return history
