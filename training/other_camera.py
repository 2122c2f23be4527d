"""Another hospital's photographs of eyes without the condition, fitted as normals beside the
training split (card row 76).

Every glaucoma photograph ACRIMA gives is ACRIMA's, and so is every normal one, so nothing tells the
head that another camera's look, or a soft or small photograph, is not glaucoma: the served model
called a third of CSDI's discs glaucoma (row 28), a Chinese hospital's cataract patients none of
whose expert descriptions mentions it. A folder in CSDI's layout (annotations.csv with the disc box,
splits.csv with a patient-grouped split; training/cataract.py reads the same) gives its training
split's discs, cropped as serving's full-field path crops them; they count
hp.other_camera_weight photographs each. The data's licence is CC BY-NC 4.0 (treat as such): a
model fitted on it is for research and education, as the model card says.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterator, NamedTuple

import numpy as np
from PIL import Image

from screening import disc, framing
from screening.preprocessing import DETAIL_DECODE_SIDE, ImageInfo, decode_image


# Serving's disc locator card (its disc-to-crop ratio frames the crops), found beside training/ as
# the trunk is: in the repository and in the training image, which copies it (training/Dockerfile).
LOCATOR_DIR = Path(__file__).resolve().parent.parent / "models" / "disc_locator"


class DiscCrop(NamedTuple):
    row: dict  # annotations.csv's row
    crop: Image.Image  # the disc crop at ACRIMA's framing, as serving cuts it
    tensor: np.ndarray  # the model input serving makes of it
    info: ImageInfo  # the crop's, for the quality gate
    split: str  # splits.csv's (patient-grouped) split of the photograph; "" without one


def is_other_camera_folder(folder: Path | None) -> bool:
    return folder is not None and (Path(folder) / "annotations.csv").is_file() and (
        Path(folder) / "splits.csv").is_file()


class AnnotatedPhotograph(NamedTuple):
    index: int  # the row's position in annotations.csv
    row: dict
    image: Image.Image  # decoded as serving decodes it
    info: ImageInfo
    split: str  # splits.csv's (patient-grouped) split; "" without one


def annotated_photographs(folder: Path, split: str | None = None) -> Iterator[AnnotatedPhotograph]:
    """Every photograph with a visible disc (of `split` only, if given), in annotations.csv's order."""
    folder = Path(folder)
    splits_csv = folder / "splits.csv"
    split_of = ({row["file"]: row["split"] for row in csv.DictReader(splits_csv.open())}
                if splits_csv.is_file() else {})
    for index, row in enumerate(csv.DictReader((folder / "annotations.csv").open())):
        if row["optic_disc_visible"] != "yes" or (split is not None and split_of.get(row["file"]) != split):
            continue
        image, info = decode_image((folder / row["file"]).read_bytes(), min_side=DETAIL_DECODE_SIDE)
        yield AnnotatedPhotograph(index, row, image, info, split_of.get(row["file"], ""))


def annotated_disc(row: dict, image: Image.Image, info: ImageInfo) -> disc.DiscLocation:
    """The row's disc box as a location in the decoded image (the box is in the file's pixels; the
    decode may be smaller)."""
    scale = image.width / info.width
    x1, y1, x2, y2 = (float(row[f"disc_{k}"]) * scale for k in ("x1", "y1", "x2", "y2"))
    return disc.DiscLocation(x=(x1 + x2) / 2, y=(y1 + y2) / 2, diameter=((x2 - x1) + (y2 - y1)) / 2, score=0.0)


def disc_crops(folder: Path, size: int, locator=None, split: str | None = None) -> tuple[list[DiscCrop], int]:
    """Every photograph with a visible disc (of `split` only, if given), its disc cropped as
    serving's full-field path crops it: around the annotated disc box, or where `locator` finds the
    disc; and how many the locator missed."""
    framing_locator = locator or disc.Locator.load(LOCATOR_DIR)
    crops, missed = [], 0
    for _, row, image, info, photo_split in annotated_photographs(folder, split):
        if locator is not None:
            found = locator.locate(image)
            if found is None:
                missed += 1
                continue
        else:
            found = annotated_disc(row, image, info)
        box, tensor, crop_info = framing.disc_crop_input(image, info, found, framing_locator.disc_to_crop, size)
        crops.append(DiscCrop(row, disc.crop(image, box), tensor, crop_info, photo_split))
    return crops, missed


def normals_bank(pooled, folder: Path, copies: int, seed: int, size: int, mirror: bool = False) -> np.ndarray:
    """features.feature_bank's views of the training split's disc crops: (views, M, D)."""
    from training.features import feature_bank

    crops, _ = disc_crops(folder, size, split="train")
    if not crops:
        raise ValueError(f"{folder}: no training-split photograph with a visible disc")
    print(f"trunk features of another camera's {len(crops)} normal discs and {copies} re-acquired copies",
          flush=True)
    return feature_bank(pooled, [c.crop for c in crops], np.stack([c.tensor for c in crops]), copies, seed,
                        mirror=mirror)
