"""Retraining: the CreateTrainingJob request, and promotion only when the new model measures better."""

from __future__ import annotations

import io
import json
import tarfile

import boto3
import pytest
from moto import mock_aws

from screening import resources
from screening.config import Settings
from screening.model_registry import should_promote
from screening.retraining import METRIC_DEFINITIONS, promote_if_better, training_job_request

CURRENT = {"version": "a", "evaluation_set": "s1", "metrics": {"roc_auc": 0.98, "sensitivity": 0.93}}


def card(auc, sensitivity=0.93, evaluation_set="s1"):
    return {"version": "b", "evaluation_set": evaluation_set, "metrics": {"roc_auc": auc, "sensitivity": sensitivity}}


@pytest.mark.parametrize("candidate,promote", [
    (card(0.99), True),
    (card(0.98), False),  # equal is not better
    (card(0.97), False),
    (card(0.99, sensitivity=0.85), False),  # a screening model must keep its sensitivity
    (card(0.99, evaluation_set="other"), False),  # not comparable
])
def test_should_promote_only_a_better_model(candidate, promote):
    assert should_promote(candidate, CURRENT).promote is promote


def test_training_job_request_follows_the_sagemaker_contract():
    settings = Settings(model_bucket="models-b", training_image_uri="123.dkr.ecr/x:1",
                        training_role_arn="arn:aws:iam::1:role/sm")
    request = training_job_request(settings, "glaucoma-20261122-000000", {"epochs": 5})
    assert request["HyperParameters"] == {"model_version": "glaucoma-20261122-000000", "epochs": "5"}
    assert all(isinstance(v, str) for v in request["HyperParameters"].values())
    assert [c["ChannelName"] for c in request["InputDataConfig"]] == ["train", "validation", "test"]
    assert request["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] == \
        "s3://models-b/training-data/train/"
    assert request["AlgorithmSpecification"]["MetricDefinitions"] == METRIC_DEFINITIONS


def model_tarball(model_card: dict) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in (("glaucoma.tflite", b"tflite-bytes"), ("model.json", json.dumps(model_card).encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


@mock_aws
@pytest.mark.parametrize("auc,promoted", [(0.995, True), (0.95, False)])
def test_promotion_against_the_bundled_model(monkeypatch, tmp_path, auc, promoted):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="models-b")
    bundled = json.loads(open("models/model.json").read())
    candidate = {**bundled, "version": "glaucoma-new", "metrics": {**bundled["metrics"], "roc_auc": auc}}
    s3.put_object(Bucket="models-b", Key=f"{resources.TRAINING_OUTPUT_PREFIX}glaucoma-new/output/model.tar.gz",
                  Body=model_tarball(candidate))
    decision = promote_if_better(s3, Settings(model_bucket="models-b", model_dir="models"), "glaucoma-new")
    assert decision.promote is promoted
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="models-b")["Contents"]}
    assert f"{resources.CANDIDATE_MODEL_PREFIX}glaucoma-new/decision.json" in keys
    assert (f"{resources.CURRENT_MODEL_PREFIX}model.json" in keys) is promoted


@mock_aws
def test_retrain_route_starts_a_training_job_and_promote_ignores_other_jobs(monkeypatch):
    from handlers import retrain
    from localcloud.lambda_context import LambdaContext

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("MODEL_BUCKET", "models-b")
    monkeypatch.setenv("TRAINING_IMAGE_URI", "123456789012.dkr.ecr.us-east-1.amazonaws.com/train:1")
    monkeypatch.setenv("TRAINING_ROLE_ARN", "arn:aws:iam::123456789012:role/sagemaker-training")
    event = {"httpMethod": "POST", "path": "/retrain", "body": json.dumps({"hyperparameters": {"epochs": 80}})}
    response = retrain.start_handler(event, LambdaContext.for_function("retrain"))
    assert response["statusCode"] == 202
    job = json.loads(response["body"])["training_job"]
    described = boto3.client("sagemaker").describe_training_job(TrainingJobName=job)
    assert described["HyperParameters"]["epochs"] == "80"
    assert described["OutputDataConfig"]["S3OutputPath"] == "s3://models-b/training-output/"
    bad = retrain.start_handler({"httpMethod": "POST", "body": "{not json"}, LambdaContext.for_function("retrain"))
    assert bad["statusCode"] == 400 and json.loads(bad["body"])["error"] == "malformed_json"
    ignored = retrain.promote_handler({"detail": {"TrainingJobName": "someone-else", "TrainingJobStatus": "Completed"}},
                                      LambdaContext.for_function("promote"))
    assert ignored["promoted"] is False
