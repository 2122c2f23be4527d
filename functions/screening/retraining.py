"""Retraining: start a SageMaker training job, and promote its model only if it measures better."""

from __future__ import annotations

import io
import json
import tarfile
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from screening import resources
from screening.config import Settings
from screening.inference import CARD_FILE, MODEL_FILE

if TYPE_CHECKING:
    from screening.model_registry import PromotionDecision

JOB_NAME_PREFIX = "glaucoma-"
# The training job prints `METRIC <name>=<float>` lines (training/metrics.py); SageMaker
# reads them with these regexes (first group) into CloudWatch.
METRIC_NAMES = (
    "train_loss", "train_auc", "val_loss", "val_auc",
    "test_auc", "test_accuracy", "test_sensitivity", "test_specificity",
    "test_precision", "test_f1", "test_sensitivity_at_95_specificity",
    "threshold", "test_auc_grey", "test_auc_colour_shift",
)
METRIC_DEFINITIONS = [{"Name": n, "Regex": f"METRIC {n}=([-+0-9.eE]+|nan)"} for n in METRIC_NAMES]


def job_name(now: datetime | None = None) -> str:
    now = now or datetime.now(timezone.utc)
    return f"{JOB_NAME_PREFIX}{now:%Y%m%d-%H%M%S}"


def training_job_request(settings: Settings, name: str, hyperparameters: dict[str, str]) -> dict:
    """The CreateTrainingJob request: data channels from the model bucket, output beside them."""
    bucket = settings.model_bucket

    def channel(channel_name: str) -> dict:
        return {"ChannelName": channel_name, "InputMode": "File", "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3DataDistributionType": "FullyReplicated",
            "S3Uri": f"s3://{bucket}/{resources.TRAINING_DATA_PREFIX}{channel_name}/"}}}

    return {
        "TrainingJobName": name,
        "AlgorithmSpecification": {"TrainingImage": settings.training_image_uri, "TrainingInputMode": "File",
                                   "MetricDefinitions": METRIC_DEFINITIONS},
        "RoleArn": settings.training_role_arn,
        "HyperParameters": {"model_version": name, **{k: str(v) for k, v in hyperparameters.items()}},
        "InputDataConfig": [channel("train"), channel("validation"), channel("test")],
        "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/{resources.TRAINING_OUTPUT_PREFIX}"},
        "ResourceConfig": {"InstanceType": settings.training_instance_type, "InstanceCount": 1,
                           "VolumeSizeInGB": 30},
        "StoppingCondition": {"MaxRuntimeInSeconds": settings.training_max_runtime_seconds},
        "EnableNetworkIsolation": True,
    }


def start_training(sagemaker, settings: Settings, hyperparameters: dict[str, str] | None = None) -> str:
    name = job_name()
    sagemaker.create_training_job(**training_job_request(settings, name, hyperparameters or {}))
    return name


def bundled_card(settings: Settings) -> dict | None:
    """Until a model was promoted, the model baked into the image is the current one."""
    path = Path(settings.model_dir) / CARD_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def promote_if_better(s3, settings: Settings, job: str) -> PromotionDecision:
    """Unpack the job's model.tar.gz to models/candidates/<job>/, then promote it if it wins."""
    # Imported here: model_registry needs botocore, and the training image (no AWS SDK) imports this
    # module for METRIC_DEFINITIONS (tests/packaging/test_dockerfiles.py).
    from screening.model_registry import PromotionDecision, promote, read_card, should_promote

    bucket = settings.model_bucket
    archive = s3.get_object(Bucket=bucket, Key=f"{resources.TRAINING_OUTPUT_PREFIX}{job}/output/model.tar.gz")
    candidate_prefix = f"{resources.CANDIDATE_MODEL_PREFIX}{job}/"
    with tarfile.open(fileobj=io.BytesIO(archive["Body"].read()), mode="r:gz") as tar:
        members = {m.name.lstrip("./"): m for m in tar.getmembers() if m.isfile()}
        for name in (MODEL_FILE, CARD_FILE):
            if name not in members:
                return PromotionDecision(False, f"the job's model.tar.gz has no {name}")
            s3.put_object(Bucket=bucket, Key=candidate_prefix + name, Body=tar.extractfile(members[name]).read())
    candidate = read_card(s3, bucket, candidate_prefix)
    current = read_card(s3, bucket, resources.CURRENT_MODEL_PREFIX) or bundled_card(settings)
    decision = should_promote(candidate, current)
    if decision.promote:
        promote(s3, bucket, candidate_prefix)
    s3.put_object(Bucket=bucket, Key=candidate_prefix + "decision.json",
                  Body=json.dumps({"promoted": decision.promote, "reason": decision.reason}).encode())
    return decision
