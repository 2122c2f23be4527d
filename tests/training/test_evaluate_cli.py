"""`python -m training.evaluate`: any saved model on any labelled folder, metrics as JSON."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def evaluate(*args: str) -> dict:
    result = subprocess.run([sys.executable, "-m", "training.evaluate", *args], cwd=ROOT,
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout)


def test_default_model_on_the_sample_folder(sample_dir):
    report = evaluate("--model", "models", "--data", str(sample_dir), "--per-image")
    # At the model's threshold (0.328): glaucoma Im342 (P=0.005) lies below it, every normal below
    # it too, Im026 just (0.3280; samples/acrima/README.md lists every sample's P).
    assert report["n"] == 12 and report["confusion_matrix"] == {"tn": 6, "fp": 0, "fn": 1, "tp": 5}
    wrong = {i["file"] for i in report["images"]
             if (i["probability"] >= report["threshold"]) != (i["truth"] == "glaucoma")}
    assert wrong == {"glaucoma/Im342_g_ACRIMA.jpg"}
    assert report["sensitivity"] == pytest.approx(5 / 6) and report["specificity"] == pytest.approx(1.0)
    assert report["roc_auc"] > 0.7 and report["variant"] == "as-is"


def test_keras_file_with_explicit_threshold_and_a_framing_variant(sample_dir):
    """A variant is applied to the photograph before the shared preprocessing: black padding
    to 4:3 is cropped away again, so the figures equal the photographs' own."""
    padded = evaluate("--model", "models/glaucoma.keras", "--data", str(sample_dir), "--threshold", "0.5",
                      "--variant", "pad_4x3")
    assert padded["threshold"] == 0.5 and padded["variant"] == "pad_4x3" and padded["n"] == 12
    clean = evaluate("--model", "models/glaucoma.keras", "--data", str(sample_dir), "--threshold", "0.5")
    assert padded["confusion_matrix"] == clean["confusion_matrix"]
