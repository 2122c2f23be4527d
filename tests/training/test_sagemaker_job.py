"""The training entry point under the SageMaker contract, on a tiny smoke model.

The job runs as a subprocess, exactly as the training image's entry point
would: environment variables, /opt/ml (moved by OPT_ML_ROOT), string
hyperparameters, metric lines, exit codes and the failure file.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from training.metrics import METRIC_DEFINITIONS

ROOT = Path(__file__).resolve().parents[2]


def copy_labelled(dest: Path, sample_files, start: int, count: int) -> Path:
    for label, files in sample_files.items():
        (dest / label).mkdir(parents=True, exist_ok=True)
        for f in files[start:start + count]:
            shutil.copy(f, dest / label / f.name)
    return dest


def run_job(opt_ml: Path, env_extra: dict, args: list[str] = ()) -> subprocess.CompletedProcess:
    env = {**os.environ, "OPT_ML_ROOT": str(opt_ml), "TF_CPP_MIN_LOG_LEVEL": "3", **env_extra}
    return subprocess.run([sys.executable, "-m", "training.train", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def smoke_job(tmp_path_factory, sample_files):
    """One smoke training run shared by the contract tests (a few seconds of training)."""
    opt_ml = tmp_path_factory.mktemp("opt_ml")
    channels = opt_ml / "input" / "data"
    copy_labelled(channels / "train", sample_files, 0, 3)
    copy_labelled(channels / "validation", sample_files, 3, 2)
    copy_labelled(channels / "test", sample_files, 5, 1)
    config = opt_ml / "input" / "config"
    config.mkdir(parents=True)
    # SageMaker writes every hyperparameter value as a string.
    (config / "hyperparameters.json").write_text(json.dumps(
        {"epochs": "1", "batch_size": "4", "image_size": "64", "model_version": "smoke-1",
         "learning_rate": "0.001", "pretrained": "true", "augmented_copies": "1"}))
    model_dir = opt_ml / "elsewhere" / "model"
    result = run_job(opt_ml, {
        "SM_MODEL_DIR": str(model_dir),
        "SM_CHANNEL_TRAIN": str(channels / "train"),
        "SM_CHANNEL_VALIDATION": str(channels / "validation"),
        "SM_CHANNEL_TEST": str(channels / "test"),
    }, args=["--checkpoint-dir", str(opt_ml / "checkpoints")])
    return opt_ml, model_dir, result


def test_job_succeeds_and_writes_model_and_report(smoke_job):
    opt_ml, model_dir, result = smoke_job
    assert result.returncode == 0, result.stderr[-3000:]
    assert {"glaucoma.keras", "glaucoma.tflite", "model.json"} <= {p.name for p in model_dir.iterdir()}
    card = json.loads((model_dir / "model.json").read_text())
    assert card["version"] == "smoke-1" and card["input_size"] == 64 and 0 < card["threshold"] < 1
    assert card["test_time_augmentation"] == "mirror"  # the frozen-trunk head's default (card row 52)
    report_dir = opt_ml / "output" / "data"
    metrics = json.loads((report_dir / "metrics.json").read_text())
    assert metrics["reported_on"] == "test" and metrics["test"]["n"] == 2
    assert metrics["data"]["train"]["images"] == 6 and metrics["data"]["val"]["images"] == 4
    assert metrics["hyperparameters"]["learning_rate"] == 0.001  # parsed from the string "0.001"
    for png in ("roc.png", "precision_recall.png", "history.png", "confusion_matrix.png"):
        assert (report_dir / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (opt_ml / "output" / "failure").exists()


def test_every_metric_definition_finds_its_line(smoke_job):
    _, _, result = smoke_job
    for definition in METRIC_DEFINITIONS:
        match = re.search(definition["Regex"], result.stdout)
        assert match, f"no line for {definition['Name']}"
        float(match.group(1))


def test_failure_writes_reason_and_exits_non_zero(tmp_path, sample_files):
    train = tmp_path / "train"
    copy_labelled(train, {"normal": sample_files["normal"]}, 0, 2)  # no glaucoma/ folder
    result = run_job(tmp_path / "opt_ml", {"SM_CHANNEL_TRAIN": str(train),
                                           "SM_MODEL_DIR": str(tmp_path / "model")})
    assert result.returncode == 1
    failure = (tmp_path / "opt_ml" / "output" / "failure").read_text()
    assert "DataLayoutError" in failure and "no 'glaucoma/' folder" in failure


def test_bad_hyperparameter_string_fails_the_job(tmp_path):
    config = tmp_path / "opt_ml" / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps({"epochs": "many"}))
    result = run_job(tmp_path / "opt_ml", {})
    assert result.returncode == 1
    assert "epochs='many' is not a valid int" in (tmp_path / "opt_ml" / "output" / "failure").read_text()


def test_command_line_flags_override_the_hyperparameters_file(tmp_path, monkeypatch):
    from training.sagemaker import parse_hyperparameters

    config = tmp_path / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps({"epochs": "7", "dropout": "0.5"}))
    monkeypatch.setenv("OPT_ML_ROOT", str(tmp_path))
    monkeypatch.setenv("SM_CHANNEL_TRAIN", str(tmp_path / "train-channel"))
    monkeypatch.delenv("SM_MODEL_DIR", raising=False)
    hp, args = parse_hyperparameters(["--epochs", "3"])
    assert hp.epochs == 3 and hp.dropout == 0.5
    assert args.train == tmp_path / "train-channel"
    assert args.model_dir == tmp_path / "model"  # /opt/ml/model under the moved root
    assert args.other_camera is None  # no other camera's channel: none
    monkeypatch.setenv("SM_CHANNEL_OTHER_CAMERA", str(tmp_path / "csdi-channel"))
    assert parse_hyperparameters([])[1].other_camera == tmp_path / "csdi-channel"
    assert parse_hyperparameters(["--other-camera", "elsewhere"])[1].other_camera == Path("elsewhere")


def test_fine_tuning_path_trains_end_to_end(tmp_path, sample_files):
    """fine_tune_from_block < 11 back-propagates into the trunk (augmenting every batch)."""
    data = copy_labelled(tmp_path / "data", sample_files, 0, 4)
    result = run_job(tmp_path / "opt_ml", {}, args=[
        "--data", str(data), "--epochs", "1", "--batch-size", "4", "--image-size", "64",
        "--fine-tune-from-block", "9", "--val-fraction", "0.25", "--model-dir", str(tmp_path / "model"),
        "--output-data-dir", str(tmp_path / "report"), "--checkpoint-dir", str(tmp_path / "ckpt")])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "trunk features" not in result.stdout  # not the cached-features path
    assert (tmp_path / "ckpt" / "best.keras").exists() and (tmp_path / "model" / "glaucoma.tflite").exists()
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert metrics["reported_on"] == "val" and metrics["hyperparameters"]["fine_tune_from_block"] == 9
