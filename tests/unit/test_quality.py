"""The image-quality gate on real images: what it refuses, and that every sample passes."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from screening import quality
from screening.config import Settings
from screening.inference import GlaucomaModel
from screening.preprocessing import ImageRejected, preprocess_bytes
from screening.service import ScreeningRequest, ScreeningService

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "quality"
MODELS = Path(__file__).resolve().parent.parent.parent / "models"


def jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def verdict(data: bytes) -> quality.QualityReport:
    return quality.assess(*preprocess_bytes(data))


@pytest.fixture(scope="module")
def normal_sample(sample_dir) -> Image.Image:
    """Im024: the sample the model is surest is normal (p = 0.05)."""
    return Image.open(sample_dir / "normal" / "Im024_ACRIMA.jpg").convert("RGB")


def all_samples(sample_dir) -> list[Path]:
    return sorted(sample_dir.glob("*/*.jpg"))


def test_every_bundled_sample_passes(sample_dir):
    files = all_samples(sample_dir)
    assert len(files) == 12
    for path in files:
        report = verdict(path.read_bytes())
        assert report.rejection is None, (path.name, report.rejection, report.measures)
        assert quality.gate(*preprocess_bytes(path.read_bytes())) == report.flags


@pytest.mark.parametrize("level", [0, 255])
def test_black_and_white_frames_are_blank(normal_sample, level):
    frame = Image.new("RGB", normal_sample.size, (level, level, level))
    assert verdict(jpeg(frame)).rejection == "blank_frame"


def test_a_near_uniform_frame_is_blank(normal_sample):
    noise = np.random.default_rng(0).integers(-2, 3, (*normal_sample.size[::-1], 3))
    frame = Image.fromarray(np.clip(128 + noise, 0, 255).astype(np.uint8))
    assert verdict(jpeg(frame)).rejection == "blank_frame"


def test_an_underexposed_sample_is_too_dark(normal_sample):
    dark = Image.fromarray((np.asarray(normal_sample, np.float32) * 0.2).astype(np.uint8))
    assert verdict(jpeg(dark)).rejection == "too_dark"


def test_an_overexposed_sample_is_too_bright(normal_sample):
    bright = Image.fromarray(np.clip(np.asarray(normal_sample, np.float32) * 2.6, 0, 255).astype(np.uint8))
    assert verdict(jpeg(bright)).rejection == "too_bright"


def test_a_blurred_sample_is_refused_and_a_slightly_soft_one_flagged(sample_dir):
    image = Image.open(sample_dir / "glaucoma" / "Im331_g_ACRIMA.jpg").convert("RGB")
    assert verdict(jpeg(image)).rejection is None
    blurred = verdict(jpeg(image.filter(ImageFilter.GaussianBlur(image.width * 0.03))))
    assert blurred.rejection == "blurred"
    assert blurred.measures["detail"] < quality.BLURRED_REJECT
    soft = verdict(jpeg(image.filter(ImageFilter.GaussianBlur(image.width * 0.0125))))
    assert soft.rejection is None and "blurred" in soft.flags


def test_a_non_fundus_photograph_is_refused():
    report = verdict((FIXTURES / "coffee.jpg").read_bytes())  # square, so the shape alone cannot refuse it
    assert report.measures["aspect"] == 1.0
    assert report.rejection == "not_fundus"


@pytest.mark.parametrize("name, reason", [("retina_full_field.jpg", "not_disc_crop"),
                                          ("csdi_DJD1.jpg", "not_disc_crop"),
                                          ("csdi_cataract_001.jpg", "not_square_crop")])
def test_full_field_fundus_photographs_are_refused(name, reason):
    report = verdict((FIXTURES / name).read_bytes())
    assert report.rejection == reason
    assert report.measures["edge_fundus"] < quality.EDGE_FUNDUS_REJECT  # the retina does not reach the frame


def frames_of(sample: Image.Image) -> dict[str, Image.Image]:
    """The same normal photograph delivered as a 4000x3000 camera frame, three ways."""
    stretched = sample.resize((4000, 3000))
    pillar = Image.new("RGB", (4000, 3000))
    pillar.paste(sample.resize((3000, 3000)), (500, 0))
    small = Image.new("RGB", (4000, 3000))
    small.paste(sample, (1800, 1300))
    square = Image.new("RGB", (3000, 3000))
    square.paste(sample.resize((1500, 1500)), (750, 750))
    return {"stretched": stretched, "pillar_box": pillar, "small_in_frame": small,
            "square_black_frame": square}


def test_a_normal_sample_in_a_big_frame_never_gets_a_label(normal_sample):
    """Before the gate, the stretched 4000x3000 frame scored glaucoma p = 0.99."""
    model = GlaucomaModel(MODELS)
    service = ScreeningService(model, store=None, settings=Settings())
    frames = frames_of(normal_sample)
    results = service.screen([ScreeningRequest(data=jpeg(image)) for image in frames.values()])
    for name, result in zip(frames, results):
        assert result.rejected, (name, result.record)
        assert result.record["reason"] in ("not_square_crop", "not_disc_crop"), name
        assert "label" not in result.record and result.record["message"]
    [original] = service.screen([ScreeningRequest(data=jpeg(normal_sample))])
    assert original.record["status"] == "ok" and original.record["label"] == "normal"


def test_gate_raises_a_rejection_with_reason_and_message():
    with pytest.raises(ImageRejected) as caught:
        quality.gate(*preprocess_bytes((FIXTURES / "csdi_DJD1.jpg").read_bytes()))
    assert caught.value.reason == "not_disc_crop"
    assert "optic disc" in caught.value.message


def test_a_greyscale_sample_is_flagged_not_refused(sample_dir):
    grey = Image.open(sample_dir / "normal" / "Im004_ACRIMA.jpg").convert("L")
    report = verdict(jpeg(grey))
    assert report.rejection is None and "no_colour" in report.flags
