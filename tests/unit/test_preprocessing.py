"""The shared preprocessing: formats, modes, orientation, canonical framing, bounded
memory for any aspect ratio, and every rejection."""

import io
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from screening.preprocessing import (DECODE_SIDE, DETAIL_DECODE_SIDE, MAX_ASPECT_RATIO, MODEL_INPUT_SIZE,
                                     WORKING_SIZE, ImageRejected, canonical_input, circle_mask,
                                     content_box, decode_image, preprocess_bytes, to_model_input)
from screening.quality import measure

ROOT = Path(__file__).resolve().parents[2]


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
    reference = canonical_input(fundus)  # decoded at full size
    tolerance = 0.03 if fmt in ("JPEG", "WEBP") else 0.01  # lossy codecs; reduced-size decoding
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


def test_non_square_content_is_padded_not_stretched():
    tall = Image.new("RGB", (100, 200), (255, 255, 255))
    tensor = to_model_input(tall)
    middle = tensor[112]
    assert middle[:50].max() == 0.0 and middle[60:164].min() > 0.99 and middle[175:].max() == 0.0


def test_outside_the_inscribed_circle_is_black():
    tensor = canonical_input(Image.new("RGB", (300, 300), (200, 120, 60)))
    mask = circle_mask(MODEL_INPUT_SIZE)[..., 0]
    assert tensor[mask == 0].max() == 0.0 and tensor[mask == 1].min() > 0.2


def test_black_padding_and_frames_vanish(fundus):
    """The same photograph letterboxed, on a 4:3 frame or shrunk on a black border gives
    (nearly) the same tensor: framing is not something the model can see."""
    clean, _ = preprocess_bytes(encode(fundus, "PNG"))
    w, h = fundus.size
    for canvas_size, offset in (((w * 4 // 3, h), (w // 6, 0)), ((w, h * 3 // 2), (0, h // 5)),
                                ((w * 5 // 4, h * 5 // 4), (w // 8, h // 8))):
        canvas = Image.new("RGB", canvas_size)
        canvas.paste(fundus, offset)
        framed, _ = preprocess_bytes(encode(canvas, "PNG"))
        assert np.abs(framed - clean).mean() < 0.01, canvas_size


def test_content_box_ignores_jpeg_ringing_on_black(fundus):
    canvas = Image.new("RGB", (fundus.width * 2, fundus.height))
    canvas.paste(fundus, (fundus.width // 2, 0))
    decoded = Image.open(io.BytesIO(encode(canvas, "JPEG", quality=30))).convert("RGB")
    left, top, right, bottom = content_box(decoded)
    assert abs(left - fundus.width // 2) <= 4 and abs(right - fundus.width * 3 // 2) <= 4
    assert top <= 2 and bottom >= fundus.height - 2


def test_blank_frames_are_rejected():
    with pytest.raises(ImageRejected) as caught:
        preprocess_bytes(encode(Image.new("RGB", (640, 480), (3, 3, 3)), "PNG"))
    assert caught.value.reason == "blank_image"


def strip_png(width: int, height: int) -> bytes:
    """A long strip of fundus-coloured noise (compresses well, decodes big)."""
    return encode(Image.new("L", (width, height), 128), "PNG", optimize=True)


@pytest.mark.parametrize("size", [(32, 1_250_000), (32, 20_000), (1_250_000, 32), (100, 900)])
def test_aspect_ratios_beyond_the_bound_are_rejected_before_decoding(size):
    data = strip_png(*size)
    tracemalloc.start()
    with pytest.raises(ImageRejected) as caught:
        preprocess_bytes(data)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert caught.value.reason == "extreme_aspect_ratio" and f"{MAX_ASPECT_RATIO:g}:1" in caught.value.message
    assert peak < 2_000_000  # nothing proportional to the image was allocated


@pytest.mark.parametrize("size", [(64, 512), (4000, 500), (3000, 4000)])
def test_memory_follows_the_model_input_not_the_image(size):
    """Shrink before padding: at the 8:1 bound and for a camera frame, the arrays allocated
    stay a few model inputs (224x224x3 float32 = 0.6 MB), never side x side."""
    image = Image.new("RGB", size, (150, 90, 40))
    data = encode(image, "JPEG", quality=90)
    tracemalloc.start()
    tensor, info = preprocess_bytes(data)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert tensor.shape == (MODEL_INPUT_SIZE, MODEL_INPUT_SIZE, 3) and (info.width, info.height) == size
    assert peak < 4 * MODEL_INPUT_SIZE * MODEL_INPUT_SIZE * 3 * 4


CHILD_PEAK_RSS = """
import io, sys
from PIL import Image
from screening.preprocessing import decode_image, preprocess_bytes

def peak_kb():  # VmHWM: this process's own peak (ru_maxrss would inherit pytest's at fork)
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1])

warm_up = io.BytesIO()
Image.effect_noise((300, 300), 40).convert("RGB").save(warm_up, "JPEG")
preprocess_bytes(warm_up.getvalue())  # plugins and lazy imports load here, not below
data = open(sys.argv[1], "rb").read()
before = peak_kb()
image = preprocess_bytes(data) if sys.argv[2] == "reduced" else decode_image(data, min_side=None)
print(peak_kb() - before)
"""


def child_peak_rss_kb(path: Path, how: str) -> int:
    result = subprocess.run([sys.executable, "-c", CHILD_PEAK_RSS, str(path), how], capture_output=True,
                            text=True, timeout=60,
                            env={"PYTHONPATH": f"{ROOT / 'functions'}:{ROOT}", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    return int(result.stdout.strip())


def test_a_camera_frame_is_decoded_at_reduced_size(tmp_path):
    """Pillow's own buffers are not seen by tracemalloc: measure a fresh process's peak RSS.
    A full 4000x3000 RGB decode needs 36 MB; the reduced one a few."""
    path = tmp_path / "frame.jpg"
    Image.effect_noise((4000, 3000), 40).convert("RGB").save(path, "JPEG", quality=90)
    assert child_peak_rss_kb(path, "full") > 30_000  # the measurement sees a full decode
    assert child_peak_rss_kb(path, "reduced") < 8_000


def test_the_model_input_is_decoded_at_the_working_resolution_and_a_disc_crop_at_twice_it(fundus):
    """A 1600x1200 JPEG: DCT scaling to 1/4 (300 px) feeds the 224-px shrink; the disc crop of a
    full-field photograph (framing.py) and training's re-acquisitions cut pixels out first, so they
    decode at 1/2 (600 px)."""
    data = encode(fundus.resize((1600, 1200)), "JPEG", quality=90)
    assert DECODE_SIDE == WORKING_SIZE and DETAIL_DECODE_SIDE == 2 * WORKING_SIZE
    assert decode_image(data)[0].size == (400, 300)
    assert decode_image(data, min_side=DETAIL_DECODE_SIDE)[0].size == (800, 600)
    assert decode_image(data, min_side=None)[0].size == (1600, 1200)


@pytest.mark.parametrize("name", ["normal/Im004_ACRIMA.jpg", "normal/Im034_ACRIMA.jpg",
                                  "glaucoma/Im342_g_ACRIMA.jpg"])
def test_a_photograph_pasted_small_on_a_camera_sized_canvas_keeps_its_detail(name):
    """The decode is reduced by the frame's size, not the photograph's: a 406-px crop pasted on a
    4000x3000 black canvas came out of a 448-px decode 101 px wide (of a 224-px one, 51 px) and
    reached the model upscaled, with 0.46-0.78 of its fine detail. Such content is decoded again,
    large enough (the quality gate's `detail`: the high-pass the `blurred` check reads)."""
    photo = Image.open(ROOT / "samples" / "acrima" / name).convert("RGB")
    canvas = Image.new("RGB", (4000, 3000))
    canvas.paste(photo, ((4000 - photo.width) // 2, (3000 - photo.height) // 2))
    alone, alone_info = preprocess_bytes((ROOT / "samples" / "acrima" / name).read_bytes())
    framed, info = preprocess_bytes(encode(canvas, "JPEG", quality=95))
    assert abs(info.content_width - photo.width) <= 8  # the record still speaks in the upload's pixels
    detail_kept = measure(framed, info)["detail"] / measure(alone, alone_info)["detail"]
    assert detail_kept > 0.85
    assert float(np.abs(framed - alone).mean()) < 0.004


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
