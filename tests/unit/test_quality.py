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
    """Im024: a sample the model calls normal (p = 0.09)."""
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


def test_a_black_frame_is_refused_as_blank_image(normal_sample):
    frame = Image.new("RGB", normal_sample.size, (0, 0, 0))
    with pytest.raises(ImageRejected) as caught:
        verdict(jpeg(frame))
    assert caught.value.reason == "blank_image"  # preprocessing finds no content box


@pytest.mark.parametrize("level", [128, 255])
def test_grey_and_white_frames_are_blank(normal_sample, level):
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
    scale = image.width / 224  # blur radii below are in pixels of the 224-px model input
    blurred = verdict(jpeg(image.filter(ImageFilter.GaussianBlur(6 * scale))))
    assert blurred.rejection == "blurred"
    assert blurred.measures["detail"] < quality.BLURRED_REJECT
    soft = verdict(jpeg(image.filter(ImageFilter.GaussianBlur(4 * scale))))
    assert soft.rejection is None and "blurred" in soft.flags


def test_every_sample_blurred_by_8_px_is_refused(sample_dir):
    for path in all_samples(sample_dir):
        image = Image.open(path).convert("RGB")
        report = verdict(jpeg(image.filter(ImageFilter.GaussianBlur(8 * image.width / 224))))
        assert report.rejection == "blurred", (path.name, report.measures)


def encoded(image: Image.Image, quality_level: int = 92) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality_level)
    return buffer.getvalue()


def gamma(image: Image.Image, power: float) -> Image.Image:
    level = np.asarray(image, np.float32) / 255.0
    return Image.fromarray(np.round(255.0 * level ** power).astype(np.uint8))


def padded_to_4_3(image: Image.Image) -> Image.Image:
    canvas = Image.new("RGB", (round(image.height * 4 / 3), image.height))
    canvas.paste(image, ((canvas.width - image.width) // 2, 0))
    return canvas


def central_crop(image: Image.Image, share: float) -> Image.Image:
    margin_x, margin_y = round(image.width * (1 - share) / 2), round(image.height * (1 - share) / 2)
    return image.crop((margin_x, margin_y, image.width - margin_x, image.height - margin_y))


USABLE_VARIANTS = {  # degraded but readable: each must pass (flags allowed)
    "blur 2 px": lambda im: encoded(im.filter(ImageFilter.GaussianBlur(2 * im.width / 224))),
    "jpeg q20": lambda im: encoded(im, 20),
    "jpeg q30": lambda im: encoded(im, 30),
    "35 % darker": lambda im: encoded(gamma(im, 1.35)),
    "35 % brighter": lambda im: encoded(gamma(im, 1 / 1.35)),
    "padded to 4:3": lambda im: encoded(padded_to_4_3(im)),
    "central 75 %": lambda im: encoded(central_crop(im, 0.75)),
    "rotated +15": lambda im: encoded(im.rotate(15, resample=Image.Resampling.BILINEAR)),
    "rotated -15": lambda im: encoded(im.rotate(-15, resample=Image.Resampling.BILINEAR)),
    "cut to 4:3": lambda im: encoded(im.crop((0, 0, im.width, round(im.height * 0.75)))),
    "a 100-px camera": lambda im: encoded(im.resize((100, 100), Image.Resampling.LANCZOS)),
    "soft, dark, q25": lambda im: encoded(gamma(im.filter(ImageFilter.GaussianBlur(2 * im.width / 224)), 1.35), 25),
}


def test_degraded_but_usable_variants_of_every_sample_pass(sample_dir):
    refused = []
    for path in all_samples(sample_dir):
        image = Image.open(path).convert("RGB")
        for name, make in USABLE_VARIANTS.items():
            report = verdict(make(image))
            if report.rejection:
                refused.append((path.name, name, report.rejection, report.measures))
    assert refused == []


def test_the_content_box_is_measured_without_the_padding(normal_sample):
    """ImageInfo carries the content box (original pixels) and its corners' lit share."""
    _, info = preprocess_bytes(jpeg(padded_to_4_3(normal_sample)))
    assert info.width == round(normal_sample.height * 4 / 3)
    assert abs(info.content_width - normal_sample.width) <= 3 and abs(info.content_height - normal_sample.height) <= 3
    assert info.corner_lit > 0.9
    _, full_field = preprocess_bytes((FIXTURES / "retina_full_field.jpg").read_bytes())
    assert full_field.corner_lit < quality.CORNER_LIT_REJECT


def test_a_strip_cut_from_a_sample_is_refused_for_its_shape(normal_sample):
    strip = normal_sample.crop((0, 0, normal_sample.width, normal_sample.height // 2))  # 2:1
    report = verdict(jpeg(strip))
    assert report.rejection == "not_square_crop" and report.measures["aspect"] > quality.ASPECT_REJECT


def test_a_non_fundus_photograph_is_refused():
    report = verdict((FIXTURES / "coffee.jpg").read_bytes())  # square, so the shape alone cannot refuse it
    assert report.measures["aspect"] == 1.0
    assert report.rejection == "not_fundus"


@pytest.mark.parametrize("name", ["retina_full_field.jpg", "csdi_DJD1.jpg", "csdi_cataract_001.jpg"])
def test_full_field_fundus_photographs_are_refused(name):
    """The circle mask hides the round fundus in the model input; the content box's corners do not."""
    report = verdict((FIXTURES / name).read_bytes())
    assert report.rejection == "not_disc_crop"
    assert report.measures["corner_lit"] < quality.CORNER_LIT_REJECT  # black corners around a round fundus


def frames_of(sample: Image.Image) -> dict[str, Image.Image]:
    """The same normal photograph delivered inside a 4000x3000 camera frame, three ways."""
    pillar = Image.new("RGB", (4000, 3000))
    pillar.paste(sample.resize((3000, 3000)), (500, 0))
    small = Image.new("RGB", (4000, 3000))
    small.paste(sample, (1800, 1300))
    square = Image.new("RGB", (3000, 3000))
    square.paste(sample.resize((1500, 1500)), (750, 750))
    return {"pillar_box": pillar, "small_in_frame": small, "square_black_frame": square}


def test_a_normal_sample_in_a_big_black_frame_is_read_as_the_crop_itself(normal_sample):
    """Preprocessing crops the black frame away: the gate and the model see the crop."""
    model = GlaucomaModel(MODELS)
    service = ScreeningService(model, store=None, settings=Settings())
    frames = frames_of(normal_sample)
    results = service.screen([ScreeningRequest(data=jpeg(image)) for image in frames.values()])
    [original] = service.screen([ScreeningRequest(data=jpeg(normal_sample))])
    assert original.record["status"] == "ok" and original.record["label"] == "normal"
    for name, result in zip(frames, results):
        assert result.record["status"] == "ok", (name, result.record)
        assert result.record["label"] == "normal", name


def test_gate_raises_a_rejection_with_reason_and_message():
    with pytest.raises(ImageRejected) as caught:
        quality.gate(*preprocess_bytes((FIXTURES / "csdi_DJD1.jpg").read_bytes()))
    assert caught.value.reason == "not_disc_crop"
    assert "optic disc" in caught.value.message


def test_a_greyscale_sample_is_flagged_not_refused(sample_dir):
    grey = Image.open(sample_dir / "normal" / "Im004_ACRIMA.jpg").convert("L")
    report = verdict(jpeg(grey))
    assert report.rejection is None and "no_colour" in report.flags


def test_quantile_and_median_are_numpys_to_the_bit(sample_dir, monkeypatch):
    """The gate's bright level and redness use a bracketed selection instead of np.percentile and
    np.median: the same floats on every sample's grey levels and on arrays full of ties, down the
    fast path and down the fallback (a margin of 0 makes the bracket miss often)."""
    rng = np.random.default_rng(7)
    arrays = [(np.asarray(x, np.float32) @ np.array(quality.LUMA_WEIGHTS, np.float32)).ravel()
              for x, _ in (preprocess_bytes(p.read_bytes()) for p in all_samples(sample_dir))]
    arrays += [rng.integers(0, 3, int(n)).astype(np.float32) for n in rng.integers(1, 5000, 40)]
    arrays += [rng.normal(size=int(n)).astype(np.float32) for n in rng.integers(1, 60000, 40)]
    for margin in (quality.QUANTILE_SAMPLE_MARGIN, 0):
        monkeypatch.setattr(quality, "QUANTILE_SAMPLE_MARGIN", margin)
        for values in arrays:
            for q in (0.0, 0.01, 0.5, 0.99, 1.0):
                assert quality.quantile(values, q) == float(np.percentile(values, 100 * q))
            assert quality.median(values) == float(np.median(values))


def reference_blur(grey: np.ndarray, sigma: float) -> np.ndarray:
    """The definition: np.pad(edge), then each pass a dot product over a sliding window."""
    radius = int(3 * sigma)
    weights = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    weights = (weights / weights.sum()).astype(np.float32)
    padded = np.pad(np.asarray(grey, np.float32), radius, mode="edge")
    rows = np.lib.stride_tricks.sliding_window_view(padded, 2 * radius + 1, axis=1) @ weights
    return np.lib.stride_tricks.sliding_window_view(rows, 2 * radius + 1, axis=0) @ weights


def reference_erode(mask: np.ndarray, steps: int, outside: bool) -> np.ndarray:
    size = 2 * steps + 1
    padded = np.pad(mask, steps, constant_values=outside)
    return np.lib.stride_tricks.sliding_window_view(padded, (size, size)).all(axis=(2, 3))


def test_the_gates_building_blocks_equal_their_numpy_definitions(sample_dir):
    """fundus_mask, erode and gaussian_blur skip np.pad and temporaries for speed: on every sample
    and on odd shapes they give what the plain definitions give (the blur to float32 rounding, its
    padding exactly np.pad's)."""
    rng = np.random.default_rng(11)
    inputs = [np.asarray(preprocess_bytes(p.read_bytes())[0], np.float32) for p in all_samples(sample_dir)]
    inputs += [rng.random((h, w, 3), dtype=np.float32) * 0.2 for h, w in ((31, 17), (5, 64), (224, 224))]
    for rgb in inputs:
        mask = quality.fundus_mask(rgb)
        np.testing.assert_array_equal(mask, rgb.max(axis=2) > quality.FUNDUS_LEVEL)
        for steps, outside in ((0, False), (1, True), (quality.DETAIL_ERODE_PX, False), (16, True)):
            np.testing.assert_array_equal(quality.erode(mask, steps, outside),
                                          reference_erode(mask, steps, outside))
        grey = rgb @ np.array(quality.LUMA_WEIGHTS, np.float32)
        for radius in (1, 6):
            np.testing.assert_array_equal(quality._edge_padded(grey, radius),
                                          np.pad(grey, radius, mode="edge"))
        for sigma in (0.7, quality.DETAIL_SIGMA):
            # float32 sums in another order: equal to a few units in the last place, whose size
            # depends on the CPU's vector kernels (5 ulp, 3e-7, on an AMD EPYC), hence relative
            np.testing.assert_allclose(quality.gaussian_blur(grey, sigma), reference_blur(grey, sigma),
                                       rtol=1e-6, atol=2e-7)
