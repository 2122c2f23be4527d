"""The shared preprocessing: formats, modes, orientation, and every rejection."""

import io

import numpy as np
import pytest
from PIL import Image

from screening.preprocessing import (MODEL_INPUT_SIZE, ImageRejected, decode_image,
                                     preprocess_bytes, to_model_input)


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def fundus(sample_files) -> Image.Image:
    return Image.open(sample_files["glaucoma"][0]).convert("RGB")


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "TIFF", "WEBP", "BMP"])
def test_common_formats_decode_to_the_model_contract(fundus, fmt):
    tensor, info = preprocess_bytes(encode(fundus, fmt))
    assert tensor.shape == (MODEL_INPUT_SIZE, MODEL_INPUT_SIZE, 3)
    assert tensor.dtype == np.float32 and 0.0 <= tensor.min() and tensor.max() <= 1.0
    assert info.format == fmt
    reference = to_model_input(fundus)
    tolerance = 0.08 if fmt in ("JPEG", "WEBP") else 1e-6  # lossy codecs
    assert np.abs(tensor - reference).mean() < tolerance


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "LA", "CMYK"])
def test_pixel_modes_become_rgb(fundus, mode):
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    tensor, info = preprocess_bytes(encode(fundus.convert(mode), fmt))
    assert info.mode == mode and tensor.shape == (MODEL_INPUT_SIZE, MODEL_INPUT_SIZE, 3)
    if mode in ("L", "LA"):
        assert np.allclose(tensor[..., 0], tensor[..., 1])


def test_sixteen_bit_greyscale_uses_its_full_range():
    ramp = (np.linspace(1000, 40000, 256 * 256).reshape(256, 256)).astype(np.uint16)
    tensor, info = preprocess_bytes(encode(Image.fromarray(ramp), "PNG"))
    assert info.mode.startswith("I")
    assert tensor.min() == pytest.approx(0.0, abs=0.01) and tensor.max() == pytest.approx(1.0, abs=0.01)


def test_exif_orientation_is_applied():
    wide = Image.new("RGB", (200, 100), (200, 30, 30))
    wide.paste((30, 30, 200), (0, 0, 100, 100))  # left half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to view"
    image, _ = decode_image(encode(wide, "JPEG", exif=exif.tobytes(), quality=95))
    assert image.size == (100, 200)
    top = np.asarray(image)[10, 50]
    assert top[2] > top[0]  # the blue half is now on top


def test_non_square_images_are_padded_not_stretched():
    tall = Image.new("RGB", (100, 200), (255, 255, 255))
    tensor = to_model_input(tall)
    assert tensor[:, :50].max() == 0.0 and tensor[:, 60:160].min() > 0.99


def truncated_jpeg(fundus) -> bytes:
    data = encode(fundus, "JPEG")
    return data[: len(data) // 2]


def bomb_png() -> bytes:
    return encode(Image.new("L", (9000, 9000)), "PNG", optimize=True)


@pytest.mark.parametrize(
    "make,reason",
    [
        (lambda f: b"", "empty"),
        (lambda f: b"this is not an image at all", "not_an_image"),
        (truncated_jpeg, "truncated"),
        (lambda f: encode(f, "GIF"), "unsupported_format"),
        (lambda f: bomb_png(), "too_many_pixels"),
        (lambda f: encode(Image.new("RGB", (10, 10)), "PNG"), "too_small"),
    ],
)
def test_bad_images_are_rejected_with_a_reason(fundus, make, reason):
    with pytest.raises(ImageRejected) as caught:
        preprocess_bytes(make(fundus))
    assert caught.value.reason == reason and caught.value.message


def test_oversized_payload_is_rejected_before_decoding(fundus):
    with pytest.raises(ImageRejected) as caught:
        preprocess_bytes(encode(fundus, "PNG"), max_bytes=1000)
    assert caught.value.reason == "too_large"
