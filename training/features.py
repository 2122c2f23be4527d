"""Pooled trunk features of photographs and of many random re-acquisitions of them.

With the trunk frozen, a photograph's pooled feature vector is all the head
ever sees, so the trunk runs once per (photograph, augmented copy) and the head
is fitted on the cached vectors: ten copies of ACRIMA cost minutes on a CPU.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from screening.preprocessing import (DETAIL_DECODE_SIDE, MODEL_INPUT_SIZE, ImageRejected, canonical_input,
                                     decode_image)
from training.acquisition import low_pixel, low_pixel_acquisition, random_acquisition, reframings

# Photographs for augmentation are decoded with at least this shorter side, enough for
# every augmentation (crops to 75 %, zoom) to still pass the working resolution.
AUGMENT_DECODE_SIDE = DETAIL_DECODE_SIDE


def load_photos(paths: list[Path], workers: int = 2) -> list[Image.Image | str]:
    """Decoded, upright RGB photographs (reduced in size), or the rejection reason."""

    def read(path: Path) -> Image.Image | str:
        try:
            return decode_image(Path(path).read_bytes(), min_side=AUGMENT_DECODE_SIDE)[0]
        except ImageRejected as exc:
            return f"{exc.reason}: {exc.message}"
        except OSError as exc:
            return f"unreadable: {exc.strerror or exc}"

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(read, paths))


def pooled_model(model):
    """The classifier cut at global average pooling: photographs -> feature vectors."""
    import keras

    from training.network import POOL_LAYER

    return keras.Model(model.inputs, model.get_layer(POOL_LAYER).output)


def augmented_inputs(photos: list[Image.Image], seed: int, size: int = MODEL_INPUT_SIZE,
                     workers: int = 2, acquire=random_acquisition) -> np.ndarray:
    """One random re-acquisition of every photograph (`acquire(photo, rng)`), through the shared
    preprocessing."""

    def one(k: int) -> np.ndarray:
        rng = np.random.default_rng([seed, k])
        try:
            return canonical_input(acquire(photos[k], rng), size)
        except ImageRejected:  # an augmentation that left nothing: use the photograph itself
            return canonical_input(photos[k], size)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return np.stack(list(pool.map(one, range(len(photos)))))


def reframing_bank(pooled, photos: list[Image.Image], seed: int, size: int = MODEL_INPUT_SIZE,
                   batch_size: int = 64, workers: int = 2, make_views=reframings) -> np.ndarray:
    """(REFRAMINGS, N, D): the features of each photograph's reframings (acquisition.reframings, or
    the views `make_views(image, rng)` gives), whose spread about the photograph's own view the head
    is penalised for (hp.reframing_penalty)."""

    def one(k: int) -> np.ndarray:
        views = []
        for view in make_views(photos[k], np.random.default_rng([seed, k])):
            try:
                views.append(canonical_input(view, size))
            except ImageRejected:  # a reframing that left nothing: use the photograph itself
                views.append(canonical_input(photos[k], size))
        return np.stack(views)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        inputs = np.stack(list(pool.map(one, range(len(photos)))), axis=1)  # (REFRAMINGS, N, H, W, 3)
    features = [pooled.predict(view, batch_size=batch_size, verbose=0) for view in inputs]
    return np.stack(features).astype(np.float32)


def adaptation_views(images: np.ndarray, paths: list[Path], copies: int, seed: int) -> np.ndarray:
    """The photographs' model inputs, then `copies` random re-acquisitions of each: the views that
    batch-norm statistics are re-estimated over (network.adapt_batch_norm)."""
    if not copies:
        return images
    photos = load_photos(paths)
    return np.concatenate([images] + [augmented_inputs(photos, seed * 7919 + c, images.shape[1])
                                      for c in range(copies)])


def feature_bank(pooled, photos: list[Image.Image], clean_inputs: np.ndarray, copies: int, seed: int,
                 batch_size: int = 64, log=print, mirror: bool = False,
                 acquire=random_acquisition) -> np.ndarray:
    """(1 + copies, N, D): the clean features first, then one row per augmented copy (`acquire`d).
    With `mirror`, (2 * (1 + copies), N, D): those views, then the same views mirrored left to right,
    in the same order (split_mirror() separates them)."""
    started = time.monotonic()
    size = clean_inputs.shape[1]
    plain, mirrored = [], []
    for c in range(copies + 1):
        inputs = clean_inputs if c == 0 else augmented_inputs(photos, seed * 1000 + c - 1, size,
                                                              acquire=acquire)
        plain.append(pooled.predict(inputs, batch_size=batch_size, verbose=0))
        if mirror:
            mirrored.append(pooled.predict(inputs[:, :, ::-1], batch_size=batch_size, verbose=0))
        if c:
            log(f"  features: copy {c}/{copies} of {len(photos)} photographs "
                f"({time.monotonic() - started:.0f} s)")
    return np.stack(plain + mirrored).astype(np.float32)


def low_pixel_bank(pooled, photos: list[Image.Image], copies: int, seed: int, size: int = MODEL_INPUT_SIZE,
                   mirror: bool = False, workers: int = 2, log=print) -> np.ndarray:
    """feature_bank's layout for the photographs saved as smaller files (acquisition.low_pixel): the
    photograph itself, then `copies` random re-acquisitions, each at another pixel count; fitted as
    more photographs of the same labels (hp.low_pixel_copies, card row 76)."""

    def one(k: int) -> np.ndarray:
        try:
            return canonical_input(low_pixel(photos[k], np.random.default_rng([seed, k])), size)
        except ImageRejected:
            return canonical_input(photos[k], size)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        clean = np.stack(list(pool.map(one, range(len(photos)))))
    return feature_bank(pooled, photos, clean, copies, seed + 10_000, log=log, mirror=mirror,
                        acquire=low_pixel_acquisition)


def split_mirror(bank: np.ndarray, mirror: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """feature_bank(..., mirror=True)'s rows -> (the views as taken, their mirror images)."""
    if not mirror:
        return bank, None
    half = len(bank) // 2
    return bank[:half], bank[half:]
