"""Finding and loading labelled fundus images.

Accepted layouts, for a channel or a local path:
- `<root>/{normal,glaucoma}/*`                 one labelled folder (a channel);
- `<root>/{train,val,test}/{normal,glaucoma}/` the seeds' layout (val optional);
- `<root>/splits.csv` + images                 like ACRIMA (`path,label,split`).
"""

from __future__ import annotations

import csv
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from screening.preprocessing import MODEL_INPUT_SIZE, ImageRejected, preprocess_bytes

CLASS_NAMES = ("normal", "glaucoma")  # label index 0, 1
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp"}
SPLIT_NAMES = ("train", "val", "test")
log = logging.getLogger(__name__)


class DataLayoutError(ValueError):
    """The data on disk is not in a layout we can train on."""


@dataclass
class LabelledFiles:
    paths: list[Path] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.paths)

    def add(self, path: Path, label: int) -> None:
        self.paths.append(path)
        self.labels.append(label)


@dataclass
class LoadedImages:
    images: np.ndarray  # (N, S, S, 3) float32 in [0, 1]
    labels: np.ndarray  # (N,) int32, 1 = glaucoma
    paths: list[Path]
    skipped: list[tuple[Path, str]]


def label_index(name: str, where: str) -> int:
    if name not in CLASS_NAMES:
        raise DataLayoutError(
            f"unknown class '{name}' in {where}; class names are {', '.join(CLASS_NAMES)}")
    return CLASS_NAMES.index(name)


def list_labelled_folder(root: Path) -> LabelledFiles:
    """`root/{normal,glaucoma}/` -> files; both classes must exist and hold images."""
    root = Path(root)
    if not root.is_dir():
        raise DataLayoutError(f"{root} is not a folder")
    subfolders = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    for name in subfolders:
        label_index(name, str(root))
    files = LabelledFiles()
    for label, name in enumerate(CLASS_NAMES):
        folder = root / name
        if not folder.is_dir():
            raise DataLayoutError(f"{root} has no '{name}/' folder (found: {subfolders or 'none'})")
        images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise DataLayoutError(f"{folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        for path in images:
            files.add(path, label)
    return files


def read_splits_csv(root: Path) -> dict[str, LabelledFiles]:
    """ACRIMA-style `splits.csv` (path,label,split) -> files per split."""
    csv_path = Path(root) / "splits.csv"
    splits: dict[str, LabelledFiles] = {}
    with csv_path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"path", "label", "split"} - set(reader.fieldnames or [])
        if missing:
            raise DataLayoutError(f"{csv_path} lacks column(s) {', '.join(sorted(missing))}")
        for line, row in enumerate(reader, start=2):
            split = row["split"].strip()
            if split not in SPLIT_NAMES:
                raise DataLayoutError(f"{csv_path}:{line}: unknown split '{split}'")
            label = label_index(row["label"].strip(), f"{csv_path}:{line}")
            splits.setdefault(split, LabelledFiles()).add(Path(root) / row["path"].strip(), label)
    for split, files in splits.items():
        if len(set(files.labels)) < 2:
            raise DataLayoutError(f"{csv_path}: split '{split}' lacks one of the classes")
    if "train" not in splits:
        raise DataLayoutError(f"{csv_path} has no 'train' rows")
    return splits


def discover_splits(root: Path) -> dict[str, LabelledFiles]:
    """Any accepted layout under `root` -> files per split (keys among train/val/test)."""
    root = Path(root)
    if not root.is_dir():
        raise DataLayoutError(f"data path {root} does not exist or is not a folder")
    if (root / "splits.csv").is_file():
        return read_splits_csv(root)
    split_dirs = [name for name in SPLIT_NAMES if (root / name).is_dir()]
    if split_dirs:
        return {name: list_labelled_folder(root / name) for name in split_dirs}
    return {"train": list_labelled_folder(root)}


def stratified_split(files: LabelledFiles, fraction: float, seed: int) -> tuple[LabelledFiles, LabelledFiles]:
    """Carve a validation set out of train when the data brings none."""
    rng = np.random.default_rng(seed)
    keep, carve = LabelledFiles(), LabelledFiles()
    labels = np.asarray(files.labels)
    for label in (0, 1):
        idx = np.flatnonzero(labels == label)
        rng.shuffle(idx)
        n_carve = max(1, int(round(len(idx) * fraction)))
        for j, i in enumerate(idx):
            (carve if j < n_carve else keep).add(files.paths[i], label)
    return keep, carve


def load_images(files: LabelledFiles, size: int = MODEL_INPUT_SIZE, workers: int = 4) -> LoadedImages:
    """Read and preprocess with the serving code; unreadable files are skipped and counted."""

    def read(path: Path) -> np.ndarray | str:
        try:
            return preprocess_bytes(path.read_bytes(), size=size)[0]
        except ImageRejected as exc:
            return f"{exc.reason}: {exc.message}"
        except OSError as exc:
            return f"unreadable: {exc.strerror or exc}"

    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(read, files.paths))
    images, labels, paths, skipped = [], [], [], []
    for path, label, result in zip(files.paths, files.labels, results):
        if isinstance(result, str):
            log.warning("skipping %s (%s)", path.name, result)
            skipped.append((path, result))
            continue
        images.append(result)
        labels.append(label)
        paths.append(path)
    if not images:
        raise DataLayoutError("no readable images were found")
    return LoadedImages(np.stack(images), np.asarray(labels, np.int32), paths, skipped)


def native_widths(paths: list[Path]) -> np.ndarray:
    """The photographs' pixel widths as stored: ACRIMA's proxy for the acquisition set-up
    (crossval's groups, the head's size balance)."""
    from PIL import Image

    widths = []
    for path in paths:
        with Image.open(path) as image:
            widths.append(image.width)
    return np.array(widths, np.int64)
