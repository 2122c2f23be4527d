"""The linear head: folding standardisation and calibration into one dense unit,
ECE, and cross-validation folds that keep acquisition groups apart."""

import numpy as np
import pytest

from training.crossval import WIDTH_BIN, acquisition_groups, cross_validate
from training.head import (LinearHead, expected_calibration_error, fit_head, platt_scaling,
                           reliability_table)


def synthetic(n=400, d=12, seed=0, shift=1.0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    features = rng.normal(size=(n, d)) * rng.uniform(0.5, 5, d) + rng.uniform(-3, 3, d)
    features[:, 0] += shift * labels * 3
    return features, labels


def test_fitted_head_separates_and_is_one_affine_map():
    x, y = synthetic()
    head = fit_head(x, y, c=1.0)
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(y, head.logits(x)) > 0.9
    assert np.allclose(head.logits(x), x @ head.weights + head.bias)


def test_platt_scaling_calibrates_an_overconfident_head():
    x, y = synthetic(seed=1)
    head = fit_head(x, y, c=1.0)
    overconfident = head.calibrated(6.0, 0.0)
    calibrated = platt_scaling(overconfident, *synthetic(seed=2))
    xt, yt = synthetic(seed=3)
    assert expected_calibration_error(yt, calibrated.probabilities(xt)) < 0.6 * expected_calibration_error(
        yt, overconfident.probabilities(xt))


def test_expected_calibration_error_known_values():
    labels = np.array([0, 0, 1, 1])
    assert expected_calibration_error(labels, np.array([0.0, 0.0, 1.0, 1.0])) == pytest.approx(0.0)
    assert expected_calibration_error(labels, np.array([0.55, 0.55, 0.55, 0.55])) == pytest.approx(0.05)
    table = reliability_table(labels, np.array([0.05, 0.15, 0.85, 0.95]))
    assert [row["n"] for row in table] == [1, 1, 1, 1]


def test_head_written_into_the_model_gives_its_logits(sample_files):
    import keras

    from training.data import LabelledFiles, load_images
    from training.features import pooled_model
    from training.head import write_into
    from training.network import build_classifier

    files = LabelledFiles()
    for p in sample_files["normal"][:2] + sample_files["glaucoma"][:2]:
        files.add(p, 0)
    images = load_images(files, size=96).images
    model = build_classifier(input_size=96, dropout=0.0)
    features = pooled_model(model).predict(images, verbose=0)
    head = LinearHead(np.random.default_rng(0).normal(size=features.shape[1]) * 0.1, -0.3)
    write_into(model, head)
    assert np.allclose(model.predict(images, verbose=0)[:, 0], head.probabilities(features), atol=1e-5)
    keras.backend.clear_session()


def test_cross_validation_keeps_width_groups_apart():
    x, y = synthetic(n=300, seed=4, shift=3.0)
    rng = np.random.default_rng(5)
    widths = np.where(y == 1, rng.integers(300, 1400, len(y)), rng.integers(250, 650, len(y)))
    bank = np.stack([x, x + rng.normal(scale=0.3, size=x.shape)])
    result = cross_validate(bank, y, widths, c=1.0)
    assert len(result["folds"]) == 5
    seen = [set(f["width_bins_test"]) for f in result["folds"]]
    for i in range(5):
        for j in range(i + 1, 5):
            assert not seen[i] & seen[j]  # a width bin lies in one test fold only
    assert set().union(*seen) == {int(g) * WIDTH_BIN for g in acquisition_groups(widths)}
    assert result["summary"]["roc_auc"]["mean"] > 0.85 and result["summary"]["roc_auc"]["sd"] >= 0
