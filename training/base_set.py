"""The base set: the data a job retrains from when it gets no data channel (a fresh clone, the
training image), so the product never needs the ACRIMA data set at run time.

    training/base_set/<condition>/val/{normal,<positive>}/*.jpg    448-px JPEGs (quality 85)
    training/base_set/<condition>/test/{normal,<positive>}/*.jpg
    training/base_set/<condition>-train-features.npz                trunk features of train
    training/base_set/<condition>.json                              counts, source, trunk fingerprint

Why this split: with the trunk frozen, the head (train.fit_head_on_features,
the same recipe as train.fit_invariant_head) sees only the trunk's pooled
multi-scale features, so the training split travels as the feature bank of its
photographs and of `augmented_copies` re-acquired copies of each (float16,
(1 + copies, N, D)), the bank of the same views mirrored left to right, the features of each
photograph's reframings (the head's reframing penalty) and the photographs' native widths (the
head's size balance); val
(C, Platt scaling, the threshold, and its re-acquired copies) and test (the
gate's base split) travel as JPEGs at the side the re-acquisitions decode at
(DETAIL_DECODE_SIDE, twice the preprocessing's DECODE_SIDE).

The features depend on the trunk, its input size and the preprocessing. When
any of them changes, regenerate with one command:

    make base-set                     # = python -m training.base_set --data $(ACRIMA_DIR)

A job checks the stored features against the current trunk on the stored
probe images, and fails with that instruction when they disagree.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from screening.preprocessing import DETAIL_DECODE_SIDE
from training import data as data_mod

BASE_SET_DIR = Path(__file__).resolve().parent / "base_set"
JPEG_QUALITY = 85
PROBES = 8  # val images whose features are stored too, to detect a changed trunk
PROBE_TOLERANCE = 2e-2  # float16 storage
# 3: (1 + copies, N, D) train banks, as taken and mirrored, and the photographs' native widths;
# 4: and the features of each training photograph's reframings (hp.reframing_penalty);
# 5: and the train banks of the photographs saved as smaller files (hp.low_pixel_copies), and of
#    another hospital's normal discs where generated with one (training/other_camera.py)
FORMAT = 5
IMAGE_SIDE = DETAIL_DECODE_SIDE  # val/test JPEGs: the side re-acquisitions decode at (448)


def features_path(condition: str, root: Path = BASE_SET_DIR) -> Path:
    return Path(root) / f"{condition}-train-features.npz"


def find(condition: str, root: Path = BASE_SET_DIR) -> Path | None:
    folder = Path(root) / condition
    return folder if (folder / "val").is_dir() and (folder / "test").is_dir() else None


def eval_splits(folder: Path) -> dict[str, data_mod.LabelledFiles]:
    return {name: data_mod.list_labelled_folder(Path(folder) / name) for name in ("val", "test")}


def compatible(hp) -> bool:
    """Stored features fit only the frozen, pretrained trunk at the base set's input size."""
    from training.network import DEFAULT_BACKBONE, TRUNK_BLOCKS, trunk_fingerprint
    from training.train import trunk_weights

    summary = json.loads((BASE_SET_DIR / f"{hp.condition}.json").read_text())
    return (hp.pretrained and hp.fine_tune_from_block >= TRUNK_BLOCKS and not hp.cam_channels
            and not hp.local_contrast_sigma and not hp.input_blur_sigma
            and hp.backbone == DEFAULT_BACKBONE and not hp.pool_radius_cells and hp.antialias_from_block >= TRUNK_BLOCKS
            and not hp.standardise_feature_blocks
            and not hp.adapt_batch_norm and trunk_fingerprint(trunk_weights(hp)) == summary["trunk_weights_sha256"]
            and hp.image_size == summary["image_size"])


def _pooled_model(hp):
    from training.features import pooled_model
    from training.network import build_classifier
    from training.train import trunk_weights

    model = build_classifier(input_size=hp.image_size, cam_channels=hp.cam_channels, dropout=hp.dropout,
                             fine_tune_from_block=hp.fine_tune_from_block, backbone_weights=trunk_weights(hp))
    return model, pooled_model(model)


def check_probes(pooled, stored: np.lib.npyio.NpzFile, folder: Path, image_size: int) -> None:
    files = data_mod.LabelledFiles()
    for name in stored["probe_files"]:
        files.add(Path(folder) / str(name), 0)
    images = data_mod.load_images(files, size=image_size).images
    now = pooled.predict(images, verbose=0)
    expected = stored["probe_features"].astype(np.float32)
    stored_format = int(stored["format"]) if "format" in stored.files else 1
    if now.shape != expected.shape or stored_format != FORMAT:
        raise data_mod.DataLayoutError(
            f"the base set's stored features ({expected.shape[-1]} per image, format "
            f"{stored_format}) do not fit this trunk ({now.shape[-1]}, format {FORMAT}); "
            "regenerate them with `make base-set`")
    gap = float(np.max(np.abs(now - expected)))
    if gap > PROBE_TOLERANCE:
        raise data_mod.DataLayoutError(
            f"the base set's stored features no longer match the trunk (max difference {gap:.3f}): "
            "the trunk or the preprocessing changed; regenerate them with `make base-set`")


def stored_views(stored, name: str, copies: int, mirror: bool) -> np.ndarray | None:
    """photo_bank's layout from a stored bank `name` (and `name`'s mirror images): the photograph and
    `copies` re-acquisitions, then the same mirrored (None: not stored)."""
    if f"{name}_features" not in stored.files:
        return None
    views = [stored[f"{name}_features"][:1 + copies]]
    if mirror:
        views.append(stored[f"{name}_mirror_features"][:1 + copies])
    return np.concatenate(views).astype(np.float32)


def fit_with_base_features(hp, splits: dict, checkpoint_dir: Path, folder: Path,
                           other_camera: Path | None = None):
    """train.fit_invariant_head's recipe with the base set's stored train features (photographs and
    their re-acquired copies, as smaller files, another hospital's normal discs) joined by the
    features of the training uploads (`other_camera`: that hospital's folder instead of the stored
    discs). Returns (model, loaded, history, extras) like train.train."""
    import keras

    from training.features import load_photos, split_mirror
    from training.train import (fit_head_on_features, low_pixel_photo_bank, more_photographs,
                                other_camera_bank, photo_bank, spread_bank)

    keras.utils.set_random_seed(hp.seed)
    stored = np.load(features_path(hp.condition, folder.parent))
    model, pooled = _pooled_model(hp)
    check_probes(pooled, stored, folder, hp.image_size)
    loaded = {name: data_mod.load_images(files, size=hp.image_size)
              for name, files in splits.items() if len(files)}
    stored_bank = stored["train_features"]  # (1 + stored copies, N, D) float16
    copies = min(hp.augmented_copies, len(stored_bank) - 1)
    if copies < hp.augmented_copies:
        print(f"base set: {len(stored_bank) - 1} re-acquired copies stored; using {copies} "
              f"(asked {hp.augmented_copies}); `make base-set` stores more", flush=True)
    train_bank = [stored_views(stored, "train", copies, hp.mirror_views)]
    low_pixels = hp.reframing_penalty and hp.low_pixel_copies
    low_banks = [stored_views(stored, "train_low_pixel", copies, hp.mirror_views)] if low_pixels else []
    train_y = [stored["train_labels"].astype(np.int32)]
    train_widths = [stored["train_widths"].astype(np.int64)]
    spreads = ([np.concatenate([stored_bank[:1], stored["train_reframing_features"]]).astype(np.float32)]
               if hp.reframing_penalty else [])
    if "train" in loaded:  # the training uploads, with as many re-acquired copies as the base set's
        photos = load_photos(loaded["train"].paths)
        train_bank.append(photo_bank(pooled, loaded["train"], copies, hp.seed, hp.mirror_views, photos))
        train_y.append(loaded["train"].labels)
        train_widths.append(data_mod.native_widths(loaded["train"].paths))
        if hp.reframing_penalty:
            spreads.append(spread_bank(pooled, loaded["train"], train_bank[-1], hp.seed, photos))
        if low_pixels:
            low_banks.append(low_pixel_photo_bank(pooled, loaded["train"], copies, hp.seed, hp.mirror_views,
                                                  photos))
    train_bank, train_y = np.concatenate(train_bank, axis=1), np.concatenate(train_y)
    other = other_camera_bank(pooled, other_camera, hp)
    if other is None and hp.reframing_penalty and hp.other_camera_weight:
        other = stored_views(stored, "other_camera", copies, hp.mirror_views)
    val = loaded["val"]
    val_bank, val_mirror = split_mirror(photo_bank(pooled, val, hp.augmented_copies, hp.seed + 1,
                                                   mirror=hp.mirror_views), hp.mirror_views)
    print(f"base set: {stored_bank.shape[1]} stored photographs + {len(train_y) - stored_bank.shape[1]} "
          f"uploads, each with {copies} re-acquired copies; val {len(val.labels)}", flush=True)
    history, extras = fit_head_on_features(model, train_bank, train_y, val_bank, val.labels, hp,
                                           np.concatenate(train_widths), val_mirror,
                                           np.concatenate(spreads, axis=1) if hp.reframing_penalty else None,
                                           more_photographs(np.concatenate(low_banks, axis=1) if low_banks
                                                            else None, train_y, other, hp))
    if "train" not in loaded:  # evaluate_and_export reports the train split's size
        loaded["train"] = data_mod.LoadedImages(np.zeros((0, hp.image_size, hp.image_size, 3), np.float32),
                                                np.zeros(0, np.int32), [], [])
    return model, loaded, history, extras


def generate(data: Path, condition: str, out: Path = BASE_SET_DIR, augmented_copies: int = 6,
             other_camera: Path | None = None) -> dict:
    """ACRIMA (or any split data set) -> the base set files for `condition`; with `other_camera`,
    another hospital's normal discs' features too (training/other_camera.py)."""
    from PIL import Image

    from screening.preprocessing import DECODE_SIDE
    from training.features import load_photos, reframing_bank, split_mirror
    from training.sagemaker import Hyperparameters
    from training.train import low_pixel_photo_bank, other_camera_bank, photo_bank

    hp = Hyperparameters(condition=condition, augmented_copies=augmented_copies)
    class_names = ("normal", hp.positive_class or condition)
    data_mod.CLASS_NAMES = class_names
    splits = data_mod.discover_splits(Path(data))
    if not {"train", "val", "test"} <= set(splits):
        raise data_mod.DataLayoutError(f"{data} must bring train, val and test splits")
    folder = Path(out) / condition
    shutil.rmtree(folder, ignore_errors=True)
    counts: dict[str, dict[str, int]] = {}
    for split in ("val", "test"):
        for path, label in zip(splits[split].paths, splits[split].labels):
            with Image.open(path) as original:
                image = original.convert("RGB")
            # kept at the resolution the re-acquisitions decode at
            image.thumbnail((IMAGE_SIDE, IMAGE_SIDE), Image.Resampling.BICUBIC)
            target = folder / split / class_names[label] / f"{path.stem}.jpg"
            target.parent.mkdir(parents=True, exist_ok=True)
            buffer = io.BytesIO()
            image.save(buffer, "JPEG", quality=JPEG_QUALITY)
            target.write_bytes(buffer.getvalue())
            counts.setdefault(split, {}).setdefault(class_names[label], 0)
            counts[split][class_names[label]] += 1
    import keras

    keras.utils.set_random_seed(hp.seed)
    _, pooled = _pooled_model(hp)
    train = data_mod.load_images(splits["train"], size=hp.image_size)
    counts["train"] = {name: int((train.labels == i).sum()) for i, name in enumerate(class_names)}
    # the seed train.train gives train
    photos = load_photos(train.paths)
    bank, mirrored = split_mirror(photo_bank(pooled, train, augmented_copies, hp.seed, True, photos), True)
    reframed = reframing_bank(pooled, photos, hp.seed)  # train.spread_bank's views
    low = split_mirror(low_pixel_photo_bank(pooled, train, augmented_copies, hp.seed, True, photos), True)
    other = other_camera_bank(pooled, other_camera, hp)
    others = {} if other is None else dict(zip(("other_camera_features", "other_camera_mirror_features"),
                                               (b.astype(np.float16) for b in split_mirror(other, True))))
    probe_files = sorted(str(p.relative_to(folder)) for p in (folder / "val").rglob("*.jpg"))[:PROBES]
    probes = data_mod.LabelledFiles()
    for name in probe_files:
        probes.add(folder / name, 0)
    probe_features = pooled.predict(data_mod.load_images(probes, size=hp.image_size).images, verbose=0)
    np.savez_compressed(features_path(condition, out), format=np.int8(FORMAT),
                        train_features=bank.astype(np.float16),
                        train_mirror_features=mirrored.astype(np.float16),
                        train_reframing_features=reframed.astype(np.float16),
                        train_low_pixel_features=low[0].astype(np.float16),
                        train_low_pixel_mirror_features=low[1].astype(np.float16), **others,
                        train_labels=train.labels.astype(np.int8),
                        train_widths=data_mod.native_widths(train.paths).astype(np.int32),
                        probe_files=np.array(probe_files), probe_features=probe_features.astype(np.float16))
    from training.network import trunk_fingerprint
    from training.train import trunk_weights

    by_label: dict[str, int] = {}
    for split_counts in counts.values():
        for name, n in split_counts.items():
            by_label[name] = by_label.get(name, 0) + n
    summary = {"condition": condition, "class_names": list(class_names), "source": str(Path(data).name),
               "licence": "ACRIMA, CC BY 4.0 (derived: resized images and trunk features)" + (
                   f"; another camera's normal discs ({Path(other_camera).name}, {other.shape[1]}): trunk "
                   "features only, CC BY-NC 4.0 (research and education)" if other is not None else ""),
               "other_camera_discs": 0 if other is None else int(other.shape[1]),
               "image_size": hp.image_size, "image_side": IMAGE_SIDE, "decode_side": DECODE_SIDE,
               "augmented_copies": augmented_copies, "feature_dims": int(bank.shape[-1]),
               "trunk_weights": trunk_weights(hp).name, "trunk_weights_sha256": trunk_fingerprint(trunk_weights(hp)),
               "by_split": counts, "by_label": by_label, "total": sum(by_label.values()),
               "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "command": ("make base-set (python -m training.base_set --data <ACRIMA_DIR> "
                           "--other-camera <CSDI_DIR>)")}
    (Path(out) / f"{condition}.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Regenerate the base set from ACRIMA (or any split data).")
    parser.add_argument("--data", type=Path, required=True, help="a data set with train/val/test splits")
    parser.add_argument("--condition", default="glaucoma")
    parser.add_argument("--out", type=Path, default=BASE_SET_DIR)
    parser.add_argument("--augmented-copies", type=int, default=6)
    parser.add_argument("--other-camera", type=Path, default=None,
                        help="another hospital's normal discs in CSDI's layout (training/other_camera.py)")
    args = parser.parse_args(argv)
    summary = generate(args.data, args.condition, args.out, args.augmented_copies, args.other_camera)
    size = sum(p.stat().st_size for p in Path(args.out).rglob("*") if p.is_file()
               and (p.name.startswith(args.condition) or args.condition in p.parts))
    print(json.dumps({"total_images": summary["total"], "by_split": summary["by_split"], "bytes": size}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
