"""Augmentation keeps the model's input contract and really changes what it claims to."""

import keras
import numpy as np

from training.augment import acquisition, gaussian_blur, make_augmenter
from training.data import LabelledFiles, load_images


def sample_batch(sample_files, n=4):
    files = LabelledFiles()
    for p in sample_files["glaucoma"][:n]:
        files.add(p, 1)
    return load_images(files).images


def high_frequency_energy(images):
    """Variance of the Laplacian inside the frame: fine detail."""
    inner = images[:, 16:-16, 16:-16].mean(axis=3)
    laplacian = (inner[:, 1:-1, 2:] + inner[:, 1:-1, :-2] + inner[:, 2:, 1:-1] + inner[:, :-2, 1:-1]
                 - 4 * inner[:, 1:-1, 1:-1])
    return float(laplacian.var())


def test_augmenter_keeps_shape_and_range_and_changes_images(sample_files):
    keras.utils.set_random_seed(0)
    images = sample_batch(sample_files)
    out = np.asarray(make_augmenter(0)(images))
    assert out.shape == images.shape and out.min() >= 0.0 and out.max() <= 1.0
    assert np.abs(out - images).mean() > 0.01


def test_blur_removes_fine_detail(sample_files):
    images = sample_batch(sample_files)
    blurred = np.asarray(gaussian_blur(images, 2.0))
    assert high_frequency_energy(blurred) < 0.3 * high_frequency_energy(images)
    assert abs(blurred.mean() - images.mean()) < 0.01  # no darkened borders


def test_acquisition_off_is_identity_and_on_degrades(sample_files):
    keras.utils.set_random_seed(1)
    images = sample_batch(sample_files)
    assert np.array_equal(np.asarray(acquisition(images, 0.0)), images)
    degraded = np.asarray(acquisition(images, 1.0))
    assert degraded.shape == images.shape and 0.0 <= degraded.min() and degraded.max() <= 1.0
    assert (degraded[:, :5, :5] < 0.02).all()  # the looser crop leaves a black border
    assert np.abs(degraded - images).mean() > 0.02
