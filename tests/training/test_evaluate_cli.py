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
    report = evaluate("--model", "models", "--data", str(sample_dir))
    # samples/acrima/README.md: one normal image (Im011, P=0.40) lies above the 0.364 threshold
    assert report["n"] == 12 and report["confusion_matrix"] == {"tn": 5, "fp": 1, "fn": 0, "tp": 6}
    assert report["sensitivity"] == 1.0 and report["specificity"] == pytest.approx(5 / 6)
    assert report["roc_auc"] > 0.9 and report["variant"] == "as-is"


def test_keras_file_with_explicit_threshold_and_a_colour_variant(sample_dir):
    report = evaluate("--model", "models/glaucoma.keras", "--data", str(sample_dir), "--threshold", "0.5",
                      "--variant", "colour_shift")
    assert report["threshold"] == 0.5 and report["variant"] == "colour_shift" and report["n"] == 12
