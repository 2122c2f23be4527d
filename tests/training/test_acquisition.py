"""Re-acquisition augmentation and the invariance suite's variants: they change the
photograph as claimed, and the canonical preprocessing undoes what it should."""

import io

import numpy as np
import pytest
from PIL import Image

from screening.preprocessing import MODEL_INPUT_SIZE, canonical_input, decode_image, preprocess_bytes
from training import acquisition
from training.acquisition import EXTRA_VARIANTS, VARIANTS, blur, random_acquisition, resample, rotate


@pytest.fixture(scope="module")
def photo(sample_files) -> Image.Image:
    return decode_image(sample_files["normal"][0].read_bytes(), min_side=None)[0]


def test_random_acquisitions_differ_and_keep_the_input_contract(photo):
    rng = np.random.default_rng(0)
    tensors = [canonical_input(random_acquisition(photo, rng)) for _ in range(6)]
    clean = canonical_input(photo)
    for tensor in tensors:
        assert tensor.shape == (MODEL_INPUT_SIZE, MODEL_INPUT_SIZE, 3) and 0 <= tensor.min() <= tensor.max() <= 1
    assert min(np.abs(t - clean).mean() for t in tensors) > 0.005
    again = canonical_input(random_acquisition(photo, np.random.default_rng(0)))
    assert np.array_equal(again, tensors[0])  # seeded: reproducible


def test_re_acquisitions_can_come_in_every_file_size_whatever_the_photographs(photo, monkeypatch):
    """ACRIMA's glaucoma files are about twice its normals' size: with NATIVE_SIZE_SHARE on (off by
    default, model card row 30), the copies of a small and of a large file both span small and
    large files."""
    monkeypatch.setattr(acquisition, "NATIVE_SIZE_SHARE", 0.5)
    for side in (300, 700):
        source = resample(photo, side)
        assert min(source.size) == side and abs(source.width / source.height - photo.width / photo.height) < 0.01
        rng = np.random.default_rng(1)
        sides = [min(random_acquisition(source, rng).size) for _ in range(60)]
        assert min(sides) < 250 and max(sides) > 650, (side, sorted(sides))


@pytest.mark.parametrize("name", ["pad_4x3", "pad_3x4_offset", "zoom_0.8"])
def test_black_framing_variants_are_undone_by_the_preprocessing(photo, name):
    clean = preprocess_bytes(VARIANTS["grey"](photo))[0]  # both through JPEG q95 and grey
    framed = preprocess_bytes(VARIANTS[name](photo.convert("L").convert("RGB")))[0]
    tolerance = 0.03 if name == "zoom_0.8" else 0.01  # zoom 0.8 also resamples the photograph
    assert np.abs(framed - clean).mean() < tolerance


def test_every_variant_is_a_decodable_upload_that_differs(photo):
    small = photo.resize((300, 300))
    clean = preprocess_bytes(VARIANTS["jpeg_q30"](small))[0]
    for name, variant in {**VARIANTS, **EXTRA_VARIANTS}.items():
        data = variant(small)
        assert isinstance(data, bytes) and Image.open(io.BytesIO(data)).format == "JPEG"
        tensor = preprocess_bytes(data)[0]
        assert tensor.shape == (MODEL_INPUT_SIZE, MODEL_INPUT_SIZE, 3)
        if name != "jpeg_q30":
            assert np.abs(tensor - clean).mean() > 1e-3, name


def test_blur_is_relative_to_a_224_px_photograph(photo):
    """sigma 1.5 at 224 px removes the same share of detail on a small and a large copy."""

    def detail(image):
        grey = np.asarray(image.convert("L"), np.float32)
        return float(np.abs(np.diff(grey, axis=1)).mean())

    small, large = photo.resize((224, 224)), photo.resize((672, 672))
    kept_small = detail(blur(small, 1.5)) / detail(small)
    kept_large = detail(blur(large, 1.5).resize((224, 224))) / detail(large.resize((224, 224)))
    assert kept_small < 0.8 and abs(kept_small - kept_large) < 0.15


def test_rotation_leaves_black_corners_outside_the_circle(photo):
    tensor = canonical_input(rotate(photo, 15))
    assert tensor[:20, :20].max() == 0.0 and tensor[MODEL_INPUT_SIZE // 2, MODEL_INPUT_SIZE // 2].max() > 0.1


def test_reframings_frame_the_same_disc_tighter_and_looser_but_never_at_the_suites_values(photo):
    """The views the head's reframing penalty reads (card row 71): two tighter crops at random
    offsets, a zoom out onto black and a zoom in, none at the suite's 80 / 90 % or 0.8 / 1.2."""
    views = acquisition.reframings(photo, np.random.default_rng(0))
    assert len(views) == acquisition.REFRAMINGS
    w, h = photo.size
    for crop in views[:2]:
        kept = crop.size[0] / w
        assert 0.7 - 1e-3 <= kept <= 0.95 + 1e-3 and abs(kept - 0.8) > 1e-3 and abs(kept - 0.9) > 1e-3
    zoom_out, zoom_in = views[2:]
    assert zoom_out.size == zoom_in.size == photo.size
    corner = np.asarray(zoom_out)[:3, :3]
    assert corner.max() == 0  # shrunk onto black
    clean = canonical_input(photo)
    moved = [float(np.abs(canonical_input(view) - clean).mean()) for view in views]
    assert min(moved[0], moved[1], moved[3]) > 0.01  # the crops and the zoom in reframe the disc
    assert moved[2] < 0.005  # the preprocessing takes the black margin of a zoom out away again
    again = acquisition.reframings(photo, np.random.default_rng(0))
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(views, again))


def test_reframing_bank_draws_the_views_it_is_given(photo):
    """features.reframing_bank: by default row 71's reframings, or the views `make_views` draws
    (card row 72's rotations), each through the shared preprocessing and then the pooled model."""
    import keras

    from training.features import reframing_bank

    inputs = keras.Input((MODEL_INPUT_SIZE, MODEL_INPUT_SIZE, 3))
    pooled = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(inputs))  # features: channel means
    photos = [photo, photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    default = reframing_bank(pooled, photos, seed=3)
    assert default.shape == (acquisition.REFRAMINGS, 2, 3)
    expected = [canonical_input(view).mean(axis=(0, 1))
                for view in acquisition.reframings(photos[1], np.random.default_rng([3, 1]))]
    np.testing.assert_allclose(default[:, 1], expected, atol=1e-5)

    def two_rotations(image, rng):
        return [rotate(image, float(rng.uniform(4, 18))) for _ in range(2)]

    rotated = reframing_bank(pooled, photos, seed=3, make_views=two_rotations)
    assert rotated.shape == (2, 2, 3)
    rng = np.random.default_rng([3, 0])
    expected = [canonical_input(rotate(photo, float(rng.uniform(4, 18)))).mean(axis=(0, 1)) for _ in range(2)]
    np.testing.assert_allclose(rotated[:, 0], expected, atol=1e-5)
    assert not np.allclose(rotated[:, 0], default[:2, 0], atol=1e-3)
