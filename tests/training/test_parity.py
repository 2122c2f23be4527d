"""Training and serving see the same tensor, and the .keras and TFLite files agree."""

from pathlib import Path

import numpy as np
import pytest

from screening.config import Settings
from screening.inference import GlaucomaModel, mean_over_mirror
from screening.service import ScreeningRequest, ScreeningService
from training.data import LabelledFiles, load_images

MODELS = Path(__file__).resolve().parents[2] / "models"


class CapturingModel:
    """Stands in for the interpreter only to capture what serving would feed it."""

    version, threshold = "capture", 0.5

    def __init__(self, real: GlaucomaModel) -> None:
        self.real, self.seen = real, []
        self.card = real.card  # serving preprocesses at the card's input size (issue 8)

    def predict(self, batch):
        self.seen.append(batch.copy())
        return self.real.predict(batch)


def test_training_and_serving_produce_the_same_tensor(sample_files):
    files = LabelledFiles()
    for label, paths in enumerate((sample_files["normal"][:2], sample_files["glaucoma"][:2])):
        for p in paths:
            files.add(p, label)
    training_tensors = load_images(files).images

    model = CapturingModel(GlaucomaModel(MODELS))
    service = ScreeningService(model, store=None, settings=Settings())
    service.screen([ScreeningRequest(data=p.read_bytes()) for p in files.paths])
    [serving_tensors] = model.seen
    assert serving_tensors.shape == training_tensors.shape == (4, 224, 224, 3)
    assert np.array_equal(serving_tensors, training_tensors)


@pytest.fixture(scope="module")
def real_images(sample_files) -> np.ndarray:
    files = LabelledFiles()
    for label, paths in enumerate((sample_files["normal"], sample_files["glaucoma"])):
        for p in paths:
            files.add(p, label)
    return load_images(files).images


def test_keras_and_tflite_agree_on_real_images(real_images):
    import keras

    keras_model = keras.models.load_model(MODELS / "glaucoma.keras")
    served = GlaucomaModel(MODELS)
    assert served.card.test_time_augmentation == "mirror"  # the card's model (card row 52)
    keras_probabilities = mean_over_mirror(keras_model.predict(real_images, verbose=0)[:, 0],
                                           keras_model.predict(real_images[:, :, ::-1], verbose=0)[:, 0])
    tflite_probabilities, cams = served.probabilities_and_cams(real_images)
    assert np.abs(keras_probabilities - tflite_probabilities).max() < 1e-4
    assert cams.shape == (len(real_images), 14, 14)
    # The CAM is the dense layer applied per location: its mean plus the bias is the logit.
    dense = keras.models.load_model(MODELS / "glaucoma.keras").get_layer("glaucoma_probability")
    bias = float(dense.get_weights()[1][0])
    logits = cams.mean(axis=(1, 2)) + bias
    assert np.allclose(1 / (1 + np.exp(-logits)), tflite_probabilities, atol=1e-4)


@pytest.mark.parametrize("options", [{}, {"local_contrast_sigma": 24.0}, {"input_blur_sigma": 1.0},
                                     {"pool_radius_cells": 5.0}, {"antialias_from_block": 1},
                                     {"standardise_feature_blocks": True}],
                         ids=["plain", "local-contrast", "input-blur", "central-cells", "antialiased",
                              "standardised-blocks"])
def test_freshly_exported_tflite_matches_its_keras_model(tmp_path, real_images, options):
    """The export path itself, on a small untrained model (not just the committed files), plain and
    with each optional layer before the trunk (model card rows 26-27), in it (row 32) and after it
    (rows 31 and 61): their ops must run in LiteRT too, and the served heatmap's mean plus the bias must
    stay the logit."""
    import json

    from training.export import export_tflite
    from training.network import build_classifier

    model = build_classifier(input_size=224, dropout=0.0, **options)
    export_tflite(model, tmp_path / "glaucoma.tflite")
    (tmp_path / "model.json").write_text(json.dumps({"version": "t", "threshold": 0.5, "input_size": 224}))
    served, cams = GlaucomaModel(tmp_path).probabilities_and_cams(real_images[:4])
    assert np.abs(model.predict(real_images[:4], verbose=0)[:, 0] - served).max() < 1e-4
    bias = float(model.get_layer("glaucoma_probability").get_weights()[1][0])
    assert np.allclose(1 / (1 + np.exp(-(cams.mean(axis=(1, 2)) + bias))), served, atol=1e-4)


def test_mirror_test_time_augmentation_is_the_mean_logit_and_the_mirrored_back_heatmap(tmp_path, real_images):
    """model.json "test_time_augmentation": "mirror": each photograph is scored as the mean logit over
    it and its mirror image, and its heatmap is the mean of its own map and the mirror image's map
    mirrored back, so the heatmap's mean plus the bias stays the served logit."""
    import json
    import shutil

    shutil.copy(MODELS / "glaucoma.tflite", tmp_path / "glaucoma.tflite")
    card = json.loads((MODELS / "model.json").read_text())
    (tmp_path / "model.json").write_text(json.dumps({**card, "test_time_augmentation": "none"}))
    one_view = GlaucomaModel(tmp_path)
    images = real_images[:6]
    p, cams = one_view.probabilities_and_cams(images)
    p_mirror, cams_mirror = one_view.probabilities_and_cams(np.ascontiguousarray(images[:, :, ::-1]))
    assert np.abs(p - p_mirror).max() > 1e-3  # the photographs are not symmetric: the test can fail
    (tmp_path / "model.json").write_text(json.dumps({**card, "test_time_augmentation": "mirror"}))
    served_p, served_cams = GlaucomaModel(tmp_path).probabilities_and_cams(images)
    assert np.allclose(served_p, mean_over_mirror(p, p_mirror), atol=1e-6)
    assert np.allclose(served_cams, (cams + cams_mirror[:, :, ::-1]) / 2, atol=1e-6)
    logit = lambda q: np.log(q / (1 - q))  # noqa: E731
    bias = np.mean(logit(p) - cams.mean(axis=(1, 2)))
    assert np.allclose(served_cams.mean(axis=(1, 2)) + bias, logit(served_p), atol=1e-3)
    # benches and experiments may switch it off for one view
    assert np.array_equal(GlaucomaModel(tmp_path, test_time_augmentation="none").probabilities_and_cams(images)[0], p)
    (tmp_path / "model.json").write_text(json.dumps({**card, "test_time_augmentation": "rotate"}))
    with pytest.raises(ValueError, match="test_time_augmentation"):
        GlaucomaModel(tmp_path)


def test_committed_model_card_and_report_hold_what_the_model_card_claims():
    """The committed files carry the issue-11 evaluation: clean test figures, calibration,
    the invariance suite per variant and the grouped cross-validation."""
    import json

    card = json.loads((MODELS / "model.json").read_text())
    report = json.loads((MODELS / "report" / "metrics.json").read_text())
    m = card["metrics"]
    assert m["split"] == "test" and m["roc_auc"] >= 0.95
    assert m["sensitivity"] >= 0.90 and m["specificity"] >= 0.80
    assert abs(m["roc_auc"] - m["roc_auc_grey"]) <= 0.03 and abs(m["roc_auc"] - m["roc_auc_colour_shift"]) <= 0.03
    assert 0 <= m["ece"] < 0.1 and report["calibration"]["method"] == "Platt scaling on val"
    invariance = report["invariance"]
    assert {"pad_4x3", "frame_4000x3000", "crop_80", "zoom_0.8", "zoom_1.2", "rotate_+15", "blur_1.5",
            "jpeg_q30", "grey", "colour_shift"} <= set(invariance)
    # the card: all targets met for both paddings, the camera frame and grey level (mirror TTA, row 52)
    for name in ("pad_4x3", "pad_3x4_offset", "frame_4000x3000", "grey"):
        assert invariance[name]["meets_targets"] and invariance[name]["delta_p_p95"] <= 0.1, name
    targets = [v for v in invariance.values() if v["target"]]
    assert sum(v["specificity"] >= 0.80 for v in targets) == 14 and min(v["sensitivity"] for v in targets) >= 0.80
    assert invariance["blur_1.5"]["specificity"] < 0.80  # the one it misses, as the card says
    cv = report["cross_validation"]
    assert len(cv["folds"]) == 5 and cv["summary"]["roc_auc"]["sd"] > 0
    # the adapted trunk and mirror TTA (card rows 44, 52) lifted it past 0.95; row 76 gave back 0.008
    # (0.955 -> 0.947, within the folds' sd) for another camera's discs and smaller files
    assert cv["summary"]["roc_auc"]["mean"] >= 0.94
    assert card["test_time_augmentation"] == "mirror" and "mirror image" in report["threshold_rule"]
    from training.report import tables

    printed = tables(report)  # the model card's tables come from this
    assert "| pad_4x3 |" in printed and "mean ± sd" in printed
    assert (MODELS / "glaucoma.keras").stat().st_size + (MODELS / "glaucoma.tflite").stat().st_size < 20e6
