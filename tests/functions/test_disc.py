"""The optic-disc locator and the framing step on real photographs (CSDI test fixtures, ACRIMA samples)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from screening import disc, framing, quality
from screening.inference import GlaucomaModel
from screening.preprocessing import ImageRejected, preprocess_bytes

ROOT = Path(__file__).resolve().parent.parent.parent
CSDI = ROOT / "tests" / "fixtures" / "csdi"
QUALITY = ROOT / "tests" / "fixtures" / "quality"
EXPERT = {r["file"]: r for r in csv.DictReader((CSDI / "annotations.csv").open())}


def expert(name: str) -> tuple[float, float, float]:
    x1, y1, x2, y2 = (float(EXPERT[name][k]) for k in ("disc_x1", "disc_y1", "disc_x2", "disc_y2"))
    return (x1 + x2) / 2, (y1 + y2) / 2, ((x2 - x1) + (y2 - y1)) / 2


@pytest.mark.parametrize("name", sorted(EXPERT))
def test_the_locator_finds_the_disc_within_half_a_diameter(name):
    found = disc.Locator.load().locate(Image.open(CSDI / name).convert("RGB"))
    cx, cy, diameter = expert(name)
    assert found is not None and np.hypot(found.x - cx, found.y - cy) <= diameter / 2
    assert 0.6 * diameter <= found.diameter <= 1.6 * diameter  # the size prior is of the right order


def test_the_crop_box_is_a_square_at_acrima_framing_around_the_disc():
    locator = disc.Locator.load()
    found = locator.locate(Image.open(CSDI / "CGR2.jpg").convert("RGB"))
    left, top, right, bottom = found.crop_box(locator.disc_to_crop)
    assert right - left == bottom - top == round(found.diameter / locator.disc_to_crop)
    assert abs((left + right) / 2 - found.x) <= 1 and abs((top + bottom) / 2 - found.y) <= 1


def test_the_locator_is_the_same_whatever_the_resolution():
    image = Image.open(CSDI / "cataract_019.jpg").convert("RGB")
    big = image.resize((image.width * 5 // 2, image.height * 5 // 2), Image.Resampling.BICUBIC)
    small, large = disc.Locator.load().locate(image), disc.Locator.load().locate(big)
    assert np.hypot(large.x / 2.5 - small.x, large.y / 2.5 - small.y) <= expert("cataract_019.jpg")[2] / 4


def test_a_disc_crop_is_not_a_full_field_photograph(sample_dir):
    with pytest.raises(disc.NotFullField):
        disc.Locator.load().locate(Image.open(sample_dir / "normal" / "Im024_ACRIMA.jpg").convert("RGB"))


def frame(path: Path, framing_name: str = "") -> framing.Framed:
    data = path.read_bytes()
    tensor, info = preprocess_bytes(data)
    return framing.frame(tensor, info, data, framing_name, 224, 40_000_000, 20 << 20)


def test_full_field_glaucoma_input_is_the_disc_crop_and_a_crop_stays_as_given(sample_dir):
    cropped = frame(CSDI / "CGR2.jpg")
    assert cropped.fields["cropped"] is True and len(cropped.fields["crop_box"]) == 4
    assert cropped.tensor.shape == (224, 224, 3)
    # the crop is disc-centred: the quality gate (framing checks included) accepts it
    assert quality.assess(cropped.tensor, quality.ImageInfo("JPEG", "RGB", 300, 300)).rejection is None
    given = frame(sample_dir / "normal" / "Im024_ACRIMA.jpg")
    assert given.fields == {"cropped": False}
    np.testing.assert_array_equal(given.tensor, preprocess_bytes(
        (sample_dir / "normal" / "Im024_ACRIMA.jpg").read_bytes())[0])


def test_full_field_models_skip_the_framing_checks_and_nothing_else():
    assert frame(CSDI / "cataract_019.jpg", framing.FULL_FIELD).fields == {}
    with pytest.raises(ImageRejected) as caught:
        frame(QUALITY / "coffee.jpg", framing.FULL_FIELD)
    assert caught.value.reason == "not_fundus"


def test_a_full_field_image_without_a_disc_is_rejected_with_that_reason():
    locator = disc.Locator(np.zeros(16, np.float32), 0.0, min_score=1.0, disc_to_fundus=0.15, disc_to_crop=0.53)
    data = (CSDI / "CGR2.jpg").read_bytes()
    tensor, info = preprocess_bytes(data)
    with pytest.raises(ImageRejected) as caught:
        framing.frame(tensor, info, data, "", 224, 40_000_000, 20 << 20, locator=locator)
    assert caught.value.reason == "no_disc_found" and "optic disc" in caught.value.message


def test_severity_comes_from_the_logit_through_the_card_and_is_clipped():
    card = GlaucomaModel(ROOT / "models" / "cataract").card.extras
    values = [framing.severity(p, card) for p in (1e-9, 0.2, 0.5, 0.8, 1 - 1e-9)]
    assert values == sorted(values) and values[0] == 0.0 and 9.0 < values[-1] <= 10.0
    assert framing.severity(0.999, {"severity_from_logit": {"slope": 5.0, "intercept": 3.0}}) == 10.0  # clipped
    assert framing.severity(0.5, {}) is None  # glaucoma's card has no severity
