"""The optional in-graph local contrast normalisation (`--local-contrast-sigma`, model card row 26):
what it is for is that uneven illumination across the photograph no longer reaches the trunk."""

from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from screening.preprocessing import preprocess_bytes

SAMPLES = sorted((Path(__file__).resolve().parents[2] / "samples" / "acrima").glob("*/*.jpg"))


@lru_cache(maxsize=None)
def normaliser(size: int, sigma: float):
    """The classifier's photometric normalisation alone: what the trunk is fed."""
    import keras

    from training.network import photometric_normalisation

    inputs = keras.Input((size, size, 3))
    return keras.Model(inputs, photometric_normalisation(inputs, sigma))


def normalised(images: np.ndarray, sigma: float) -> np.ndarray:
    return normaliser(images.shape[1], sigma).predict(images, verbose=0)[..., 0]


@pytest.fixture(scope="module")
def photographs() -> np.ndarray:
    return np.stack([preprocess_bytes(path.read_bytes())[0] for path in SAMPLES[::3]])


def test_an_illumination_gradient_barely_moves_the_locally_normalised_input(photographs):
    """Light falling off from 1.2 to 0.6 across the photograph (vignetting, a decentred flash),
    measured inside the fundus against the spread of the trunk's input there: with the global
    standardisation alone it moves by about half that spread, with the local normalisation by a
    small fraction of it."""
    ramp = np.linspace(1.2, 0.6, photographs.shape[2], dtype=np.float32)[None, None, :, None]
    rows, cols = np.mgrid[0:photographs.shape[1], 0:photographs.shape[2]]
    inner = np.hypot(rows - 111.5, cols - 111.5) < 95  # off the rim, where the window is one-sided
    moved = {}
    for sigma in (0.0, 24.0):
        plain = normalised(photographs, sigma)
        moved[sigma] = (np.abs(normalised(photographs * ramp, sigma) - plain)[:, inner].mean()
                        / plain[:, inner].std())
    assert moved[0.0] > 0.4, moved
    assert moved[24.0] < 0.4 * moved[0.0], moved  # 0.16 against 0.56


def test_the_locally_normalised_input_is_zero_off_the_fundus(photographs):
    out = normalised(photographs, 24.0)
    black = photographs.max(axis=-1) == 0  # the circle mask's outside and any padding
    assert np.isfinite(out).all()
    for image, off in zip(out, black):  # one constant an image: nothing of the surround leaks in
        assert np.ptp(image[off]) < 1e-5
