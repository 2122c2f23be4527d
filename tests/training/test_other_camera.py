"""Another hospital's normal discs and the photographs as smaller files, the head's fitting rows
beyond the training split's own (card row 76): drawn as claimed, through the serving path."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from screening.preprocessing import MODEL_INPUT_SIZE, canonical_input, decode_image
from training import acquisition
from training.sagemaker import Hyperparameters

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "csdi"


@pytest.fixture(scope="module")
def photo(sample_files) -> Image.Image:
    return decode_image(sample_files["glaucoma"][0].read_bytes(), min_side=None)[0]


@pytest.fixture(scope="module")
def pooled():
    import keras

    inputs = keras.Input((MODEL_INPUT_SIZE, MODEL_INPUT_SIZE, 3))
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(inputs))  # features: channel means


@pytest.fixture
def other_camera(tmp_path):
    """The CSDI fixture with a patient split: two photographs in train, one in val."""
    folder = tmp_path / "csdi"
    shutil.copytree(FIXTURE, folder)
    files = [line.split(",")[0] for line in (folder / "annotations.csv").read_text().splitlines()[1:]]
    splits = ["train", "train", "val"][:len(files)]
    (folder / "splits.csv").write_text("file,patient,severity,split\n" + "".join(
        f"{name},{k},0,{split}\n" for k, (name, split) in enumerate(zip(files, splits))))
    return folder


def test_a_low_pixel_copy_is_the_photograph_as_a_smaller_file(photo):
    low, high = acquisition.LOW_PIXEL_RANGE
    sides = []
    for seed in range(8):
        smaller = acquisition.low_pixel(photo, np.random.default_rng(seed))
        sides.append(min(smaller.size))
        assert low - 1 <= min(smaller.size) <= high + 1
        assert abs(smaller.width / smaller.height - photo.width / photo.height) < 0.02  # same framing
    assert max(sides) - min(sides) > 30  # drawn across the range
    again = acquisition.low_pixel(photo, np.random.default_rng(0))
    assert np.array_equal(np.asarray(again), np.asarray(acquisition.low_pixel(photo, np.random.default_rng(0))))


def test_the_low_pixel_bank_holds_each_photograph_as_smaller_files_in_photo_banks_views(photo, pooled):
    from training.features import low_pixel_bank

    photos = [photo, photo.transpose(Image.Transpose.FLIP_TOP_BOTTOM)]
    bank = low_pixel_bank(pooled, photos, copies=2, seed=5, mirror=True, log=lambda *_: None)
    assert bank.shape == (2 * 3, 2, 3)  # (photograph + 2 copies) as taken, then mirrored
    first = canonical_input(acquisition.low_pixel(photos[1], np.random.default_rng([5, 1])))
    np.testing.assert_allclose(bank[0, 1], first.mean(axis=(0, 1)), atol=1e-5)
    np.testing.assert_allclose(bank[3, 1], first[:, ::-1].mean(axis=(0, 1)), atol=1e-5)
    assert not np.allclose(bank[1], bank[2], atol=1e-4)  # the copies are re-acquired differently


def test_another_cameras_discs_are_cut_as_serving_cuts_them_from_its_training_split(other_camera, pooled):
    from screening import disc, framing
    from training.other_camera import disc_crops, is_other_camera_folder, normals_bank

    assert is_other_camera_folder(other_camera) and not is_other_camera_folder(FIXTURE)  # no split there
    crops, missed = disc_crops(other_camera, MODEL_INPUT_SIZE, split="train")
    assert len(crops) == 2 and missed == 0
    everything, _ = disc_crops(other_camera, MODEL_INPUT_SIZE)
    assert len(everything) == 3
    for crop in crops:
        # the annotated disc box at ACRIMA's framing: the crop's side is the disc's over disc_to_crop
        row = crop.row
        diameter = ((float(row["disc_x2"]) - float(row["disc_x1"])) + (float(row["disc_y2"]) - float(row["disc_y1"]))) / 2
        scale = crop.crop.width / (diameter / disc.default_locator().disc_to_crop)
        assert 0.3 < scale < 1.05  # decoded at most at the file's size
        np.testing.assert_allclose(framing.to_model_input(crop.crop, MODEL_INPUT_SIZE), crop.tensor, atol=1e-6)
    bank = normals_bank(pooled, other_camera, copies=1, seed=3, size=MODEL_INPUT_SIZE, mirror=True)
    assert bank.shape == (4, 2, 3)
    np.testing.assert_allclose(bank[0, 0], crops[0].tensor.mean(axis=(0, 1)), atol=1e-5)


def test_the_heads_more_photographs_are_the_smaller_files_then_the_other_cameras_normals():
    from training.train import more_photographs

    hp = Hyperparameters(other_camera_weight=0.25)
    low, other = np.ones((4, 5, 3)), np.zeros((4, 2, 3))
    bank, labels, weights = more_photographs(low, np.array([1, 0, 1, 1, 0]), other, hp)
    assert bank.shape == (4, 7, 3) and bank[:, :5].min() == 1 and bank[:, 5:].max() == 0
    assert labels.tolist() == [1, 0, 1, 1, 0, 0, 0] and weights.tolist() == [1] * 5 + [0.25] * 2
    assert more_photographs(None, np.array([1]), None, hp) is None
    assert more_photographs(None, np.array([1]), other, hp)[1].tolist() == [0, 0]
