"""The model registry, hot model refresh, and filing a job's model (moto's mock_aws)."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from screening import model_registry
from screening.config import Settings
from screening.inference import CARD_FILE, MODEL_FILE
from screening.retraining import (METRIC_DEFINITIONS, dataset_summary, register_sagemaker_output,
                                  training_job_request, training_upload, validate_hyperparameters)
from screening.training_contract import parse_metric_lines

BUCKET = "models-b"
MODELS = "models"


@pytest.fixture
def s3(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def bundled_files(version: str, threshold: float | None = None, **card_extra) -> dict[str, bytes]:
    """The real bundled TFLite model under another version (and threshold) on its card."""
    card = json.loads(open(f"{MODELS}/{CARD_FILE}").read())
    card.update(version=version, **card_extra)
    if threshold is not None:
        card["threshold"] = threshold
    return {MODEL_FILE: open(f"{MODELS}/{MODEL_FILE}", "rb").read(), CARD_FILE: json.dumps(card).encode()}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_registry_versions_pointer_and_rollback(s3):
    model_registry.register_version(s3, BUCKET, "glaucoma", "v1", bundled_files("v1"))
    model_registry.register_version(s3, BUCKET, "glaucoma", "v2", {
        **bundled_files("v2"), "gate.json": json.dumps({"promote": True, "reason": "better"}).encode()})
    with pytest.raises(ValueError, match="already exists"):
        model_registry.register_version(s3, BUCKET, "glaucoma", "v1", bundled_files("v1"))
    with pytest.raises(model_registry.UnknownVersion):
        model_registry.promote_version(s3, BUCKET, "glaucoma", "v9", "no such")
    assert model_registry.read_pointer(s3, BUCKET, "glaucoma") is None
    model_registry.promote_version(s3, BUCKET, "glaucoma", "v2", "forward")
    pointer = model_registry.promote_version(s3, BUCKET, "glaucoma", "v1", "rollback")
    assert pointer["version"] == "v1" and pointer["previous"] == "v2"
    assert model_registry.read_pointer(s3, BUCKET, "glaucoma")["version"] == "v1"
    versions = {v["version"]: v for v in model_registry.list_versions(s3, BUCKET, "glaucoma")}
    assert set(versions) == {"v1", "v2"} and versions["v2"]["decision"]["reason"] == "better"
    assert model_registry.list_versions(s3, BUCKET, "cataract") == []
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert "models/glaucoma/current.json" in keys and "models/glaucoma/v2/glaucoma.tflite" in keys


def test_serving_models_pick_up_a_promotion_within_the_refresh_interval(s3, tmp_path):
    clock = Clock()
    models = model_registry.ServingModels(s3, BUCKET, tmp_path / "cache", tmp_path / "no-bundle",
                                          refresh_seconds=30, clock=clock)
    with pytest.raises(model_registry.UnknownCondition):
        models.get("glaucoma")  # no pointer and nothing bundled
    models = model_registry.ServingModels(s3, BUCKET, tmp_path / "cache", MODELS, refresh_seconds=30,
                                          clock=clock)
    bundled = models.get()
    assert bundled.version == json.loads((Path(MODELS) / "model.json").read_text())["version"]

    model_registry.register_version(s3, BUCKET, "glaucoma", "v2", bundled_files("v2", threshold=0.9))
    model_registry.promote_version(s3, BUCKET, "glaucoma", "v2", "test")
    clock.now += 29
    assert models.get() is bundled  # not checked again yet
    clock.now += 1
    served = models.get()
    assert served.version == "v2" and served.threshold == 0.9  # model and card of one version folder

    # A broken version keeps the loaded one serving; fixing the pointer is picked up later.
    s3.put_object(Bucket=BUCKET, Key="models/glaucoma/v3/glaucoma.tflite", Body=b"not a model")
    s3.put_object(Bucket=BUCKET, Key="models/glaucoma/v3/model.json",
                  Body=json.dumps({"version": "v3", "threshold": 0.5, "input_size": 224}).encode())
    model_registry.promote_version(s3, BUCKET, "glaucoma", "v3", "bad")
    clock.now += 30
    assert models.get() is served


def test_another_condition_serves_with_its_card_class_names(s3, tmp_path):
    files = bundled_files("cat-1", class_names=["normal", "cataract"], condition="cataract")
    model_registry.register_version(s3, BUCKET, "cataract", "cat-1", files)
    model_registry.promote_version(s3, BUCKET, "cataract", "cat-1", "first")
    models = model_registry.ServingModels(s3, BUCKET, tmp_path / "cache", MODELS, refresh_seconds=60)
    cataract = models.get("cataract")
    assert cataract.card.class_names == ("normal", "cataract") and cataract.version == "cat-1"
    import numpy as np

    labels = {p.label for p in cataract.predict(np.random.default_rng(0).random((4, 224, 224, 3), np.float32))}
    assert labels <= {"normal", "cataract"}
    assert models.get("glaucoma").card.class_names == ("normal", "glaucoma")


def test_training_job_request_follows_the_sagemaker_contract():
    settings = Settings(model_bucket=BUCKET, training_image_uri="123.dkr.ecr/x:1",
                        training_role_arn="arn:aws:iam::1:role/sm")
    request = training_job_request(settings, "screening-glaucoma-20261122-000000", {"epochs": 5},
                                   champion="v1")
    assert request["HyperParameters"] == {"model_version": "screening-glaucoma-20261122-000000",
                                          "condition": "glaucoma", "epochs": "5"}
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in request["InputDataConfig"]}
    assert channels == {"uploads": f"s3://{BUCKET}/training-data/glaucoma/uploads/",
                        "champion": f"s3://{BUCKET}/models/glaucoma/v1/"}
    assert request["AlgorithmSpecification"]["MetricDefinitions"] == METRIC_DEFINITIONS


@pytest.mark.parametrize("raw,ok", [(None, True), ({"epochs": "3", "lr": 0.1}, True),
                                    ({"epochs": True}, False), ({"a": {"b": 1}}, False), ([1], False)])
def test_hyperparameters_are_a_flat_object_of_strings(raw, ok):
    if ok:
        assert all(isinstance(v, str) for v in validate_hyperparameters(raw).values())
    else:
        with pytest.raises(ValueError):
            validate_hyperparameters(raw)


def test_metric_lines_parse_like_sagemaker_regexes():
    text = "METRIC epoch=1.000000\nnoise\nMETRIC epoch=2.000000\nMETRIC val_auc=nan\nMETRIC x=oops\n"
    parsed = parse_metric_lines(text)
    assert parsed["epoch"] == 2.0 and parsed["val_auc"] != parsed["val_auc"] and "x" not in parsed


def model_tarball(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


@pytest.mark.parametrize("promote", [True, False])
def test_a_finished_job_is_filed_and_its_gate_decides_the_pointer(s3, promote):
    settings = Settings(model_bucket=BUCKET, model_dir=MODELS)
    job = "screening-glaucoma-20261122-010203"
    gate = {"promote": promote, "reason": "r", "challenger": {"overall": {"roc_auc": 0.9}},
            "champion": {"overall": {"roc_auc": 0.8}}}
    files = {**bundled_files(job), "gate.json": json.dumps(gate).encode(), "report/metrics.json": b"{}",
             "../evil": b"x"}
    s3.put_object(Bucket=BUCKET, Key=f"training-output/{job}/output/model.tar.gz", Body=model_tarball(files))
    registration = register_sagemaker_output(s3, settings, job)
    assert registration.version == job and registration.promoted is promote
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert f"models/glaucoma/{job}/report/metrics.json" in keys and not any("evil" in k for k in keys)
    pointer = model_registry.read_pointer(s3, BUCKET, "glaucoma")
    assert (pointer is not None and pointer["version"] == job) is promote


def test_training_upload_and_dataset_counts(s3, tmp_path):
    settings = Settings(model_bucket=BUCKET)
    upload = training_upload(s3, settings, "glaucoma", "glaucoma", "clinic-a", "image/png", ("normal", "glaucoma"))
    assert upload["s3_key"].startswith("training-data/glaucoma/uploads/glaucoma/clinic-a/")
    assert upload["s3_key"].endswith(".png") and "Signature" in upload["upload_url"]
    for label in ("bad", "cataract"):
        with pytest.raises(ValueError, match="label"):
            training_upload(s3, settings, "glaucoma", label, None, "image/jpeg", ("normal", "glaucoma"))
    with pytest.raises(ValueError, match="site"):
        training_upload(s3, settings, "glaucoma", "normal", "../x", "image/jpeg", ("normal", "glaucoma"))
    for key in ("normal/clinic-a/1.jpg", "normal/clinic-b/2.jpg", "glaucoma/clinic-a/3.jpg"):
        s3.put_object(Bucket=BUCKET, Key=f"training-data/glaucoma/uploads/{key}", Body=b"x")
    summary = dataset_summary(s3, settings, "glaucoma")
    uploads = summary["by_source"]["uploads"]
    assert uploads["by_label"] == {"normal": 2, "glaucoma": 1}
    assert summary["by_site"] == {"clinic-a": {"normal": 1, "glaucoma": 1}, "clinic-b": {"normal": 1}}
    assert summary["total"] == summary["by_source"]["base_set"]["total"] + 3


def test_bundled_model_dir_per_condition(tmp_path):
    assert model_registry.bundled_model_dir(MODELS, "glaucoma") is not None
    assert model_registry.bundled_model_dir(MODELS, "cataract") == Path(MODELS) / "cataract"  # issue 13
    assert model_registry.bundled_model_dir(MODELS, "retinopathy") is None
    shutil.copytree(MODELS, tmp_path / "m", ignore=shutil.ignore_patterns("report", "backbone", "*.keras", "cataract"))
    (tmp_path / "m" / "retinopathy").mkdir()
    for name in (MODEL_FILE, CARD_FILE):
        shutil.copy(tmp_path / "m" / name, tmp_path / "m" / "retinopathy" / name)
    assert model_registry.bundled_model_dir(tmp_path / "m", "retinopathy") == tmp_path / "m" / "retinopathy"


def test_the_schedule_starts_a_sagemaker_job_with_the_champion_and_the_uploads(s3, monkeypatch):
    from handlers import retrain
    from localcloud.lambda_context import LambdaContext

    monkeypatch.setenv("MODEL_BUCKET", BUCKET)
    monkeypatch.setenv("MODEL_DIR", MODELS)
    monkeypatch.setenv("TRAINING_IMAGE_URI", "123456789012.dkr.ecr.us-east-1.amazonaws.com/train:1")
    monkeypatch.setenv("TRAINING_ROLE_ARN", "arn:aws:iam::123456789012:role/sagemaker-training")
    s3.put_object(Bucket=BUCKET, Key="training-data/glaucoma/uploads/normal/clinic-a/1.jpg", Body=b"x")
    started = retrain.start_handler({"source": "aws.events", "detail-type": "Scheduled Event"},
                                    LambdaContext.for_function("retrain"))
    job = started["training_job"] or started["running"]
    assert job.startswith("screening-glaucoma-")
    described = boto3.client("sagemaker", region_name="us-east-1").describe_training_job(TrainingJobName=job)
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in described["InputDataConfig"]}
    bundled = json.loads(open(f"{MODELS}/{CARD_FILE}").read())["version"]
    assert channels["champion"] == f"s3://{BUCKET}/models/glaucoma/{bundled}/"
    assert model_registry.read_pointer(s3, BUCKET, "glaucoma")["version"] == bundled  # registered first
    ignored = retrain.promote_handler({"detail": {"TrainingJobName": "someone-else", "TrainingJobStatus": "Completed"}},
                                      LambdaContext.for_function("promote"))
    assert ignored["promoted"] is False


def test_sagemaker_jobs_answer_409_with_the_running_job(s3):
    """moto completes jobs at once, so botocore's Stubber (which validates against the API model)
    plays SageMaker with one job in progress."""
    from datetime import datetime, timezone

    from botocore.stub import Stubber

    from screening.retraining import JobAlreadyRunning, SageMakerJobs

    sagemaker = boto3.client("sagemaker", region_name="us-east-1")
    running = {"TrainingJobName": "screening-glaucoma-20261122-000000", "TrainingJobStatus": "InProgress",
               "TrainingJobArn": "arn:aws:sagemaker:us-east-1:1:training-job/screening-glaucoma-20261122-000000",
               "CreationTime": datetime(2026, 11, 22, tzinfo=timezone.utc)}
    with Stubber(sagemaker) as stub:
        stub.add_response("list_training_jobs", {"TrainingJobSummaries": [running]},
                          {"NameContains": "screening-", "StatusEquals": "InProgress", "MaxResults": 1})
        with pytest.raises(JobAlreadyRunning) as raised:
            SageMakerJobs(sagemaker, s3, Settings(model_bucket=BUCKET, model_dir=MODELS)).start("glaucoma", {})
    assert raised.value.job == running["TrainingJobName"]


def test_a_local_runner_that_died_frees_the_lock_and_its_job_says_why(s3):
    from localcloud.training_jobs import LOCK_KEY, STALE_AFTER_SECONDS, LocalTrainingJobs, state_key

    jobs = LocalTrainingJobs(s3, Settings(model_bucket=BUCKET, model_dir=MODELS))
    job = "screening-glaucoma-20261122-000000"
    s3.put_object(Bucket=BUCKET, Key=LOCK_KEY, Body=json.dumps({"training_job": job, "created": 0}).encode())
    jobs.write_state({"training_job": job, "condition": "glaucoma", "status": "InProgress", "metrics": {},
                      "hyperparameters": {"epochs": "5"}, "failure_reason": None})
    assert jobs.running() == job  # fresh heartbeat: it runs
    record = json.loads(s3.get_object(Bucket=BUCKET, Key=state_key(job))["Body"].read())
    record["updated_at"] -= STALE_AFTER_SECONDS + 1
    s3.put_object(Bucket=BUCKET, Key=state_key(job), Body=json.dumps(record).encode())
    assert jobs.running() is None
    described = jobs.describe(job)
    assert described["status"] == "Failed" and "runner stopped" in described["failure_reason"]
    assert described["progress"] == {"epoch": 0, "epochs": 5}
