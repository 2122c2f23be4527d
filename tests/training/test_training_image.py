"""The training image's dependency set is complete and AWS-SDK-free.

No Docker engine runs here, so instead of building training/Dockerfile this
installs training/requirements.txt alone into a fresh virtual environment,
copies exactly what the Dockerfile copies into a program folder, and runs a
smoke job through the image's entry point (`python -m training.sagemaker
train`) under the SageMaker contract: SM_* variables, /opt/ml (moved by
OPT_ML_ROOT), string hyperparameters, the model folder and the failure file.

The smoke job trains the second condition (normal/ + cataract/ folders,
`condition=cataract`), so the same job also shows that a condition other
than glaucoma trains and serves with the same commands.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
# What training/Dockerfile copies into /opt/program (keep in step with it).
IMAGE_COPIES = ("training", "functions/screening", "models/backbone", "models/disc_locator")


def dockerfile_copies() -> set[str]:
    lines = (ROOT / "training" / "Dockerfile").read_text().splitlines()
    return {line.split()[1] for line in lines if line.startswith("COPY ") and "requirements" not in line}


@pytest.fixture(scope="module")
def training_venv(tmp_path_factory) -> Path:
    venv = tmp_path_factory.mktemp("training-venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    # pip's own cache (and the local wheel index) make a repeat install take seconds, not minutes;
    # --no-compile skips byte-compiling all of TensorFlow (67 -> 36 s here): the job compiles what it imports.
    install = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-compile", "-r",
                              str(ROOT / "training" / "requirements.txt")],
                             capture_output=True, text=True, timeout=900)
    assert install.returncode == 0, install.stderr[-2000:]
    return python


@pytest.fixture(scope="module")
def program(tmp_path_factory) -> Path:
    program = tmp_path_factory.mktemp("opt_program")
    for path in IMAGE_COPIES:
        shutil.copytree(ROOT / path, program / path,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return program


def image_env(program: Path, opt_ml: Path, **extra: str) -> dict[str, str]:
    return {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"),
            "PYTHONPATH": f"{program}:{program / 'functions'}", "TF_CPP_MIN_LOG_LEVEL": "3",
            "OPT_ML_ROOT": str(opt_ml), **extra}


def test_the_test_copies_what_the_dockerfile_copies():
    assert dockerfile_copies() == set(IMAGE_COPIES)


@pytest.mark.slow
def test_smoke_job_runs_in_a_venv_with_only_the_training_requirements(training_venv, program, tmp_path,
                                                                       sample_files):
    opt_ml = tmp_path / "opt_ml"
    fixtures = {"normal": sample_files["normal"], "cataract": sample_files["glaucoma"]}  # stand-in images
    for channel, start, count in (("train", 0, 3), ("validation", 3, 2), ("test", 5, 1)):
        for label, files in fixtures.items():
            (opt_ml / "input" / "data" / channel / label).mkdir(parents=True)
            for f in files[start:start + count]:
                shutil.copy(f, opt_ml / "input" / "data" / channel / label / f.name)
    (opt_ml / "input" / "config").mkdir(parents=True)
    (opt_ml / "input" / "config" / "hyperparameters.json").write_text(json.dumps(
        {"epochs": "1", "batch_size": "4", "image_size": "64", "model_version": "image-smoke",
         "condition": "cataract", "augmented_copies": "1"}))
    probe = ("import runpy, sys; sys.argv = ['training.sagemaker', 'train']; code = 0\n"
             "try:\n    runpy.run_module('training.sagemaker', run_name='__main__')\n"
             "except SystemExit as e:\n    code = e.code\n"
             "print('SDK_IMPORTED=' + str(any(m in sys.modules for m in ('boto3', 'botocore'))))\n"
             "sys.exit(code)")
    result = subprocess.run([str(training_venv), "-c", probe], cwd=tmp_path, capture_output=True, text=True,
                            timeout=300, env=image_env(program, opt_ml))
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-3000:])
    assert "SDK_IMPORTED=False" in result.stdout
    card = json.loads((opt_ml / "model" / "model.json").read_text())
    assert card["version"] == "image-smoke"
    assert card["condition"] == "cataract" and card["class_names"] == ["normal", "cataract"]
    assert json.loads((opt_ml / "model" / "gate.json").read_text())["evaluation_set"]["images"] == 2
    assert (opt_ml / "model" / "glaucoma.tflite").stat().st_size > 100_000
    assert re.search(r"METRIC test_auc=([-+0-9.eE]+|nan)", result.stdout)
    assert not (opt_ml / "output" / "failure").exists()
    installed = subprocess.run([str(training_venv), "-c", "import importlib.util as u; "
                                "print([m for m in ('boto3', 'botocore') if u.find_spec(m)])"],
                               capture_output=True, text=True, timeout=60)
    assert installed.stdout.strip() == "[]"

    from screening.inference import GlaucomaModel  # served by the serving code, labels from the card

    served = GlaucomaModel(opt_ml / "model")
    images = np.random.default_rng(1).random((4, 64, 64, 3), np.float32)
    assert {p.label for p in served.predict(images)} <= {"normal", "cataract"}


@pytest.mark.slow
def test_a_broken_image_still_writes_its_failure_file(training_venv, program, tmp_path):
    """A missing package (here: the training code itself) fails the job with its reason on file."""
    broken = tmp_path / "broken"
    shutil.copytree(program, broken)
    (broken / "training" / "train.py").write_text("import package_the_image_does_not_install\n")
    opt_ml = tmp_path / "opt_ml"
    result = subprocess.run([str(training_venv), "-m", "training.sagemaker", "train"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120, env=image_env(broken, opt_ml))
    assert result.returncode == 1
    failure = (opt_ml / "output" / "failure").read_text()
    assert "failed to import" in failure and "package_the_image_does_not_install" in failure
