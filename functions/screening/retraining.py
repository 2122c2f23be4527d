"""Retraining: labelled uploads, the data set's counts, starting a job, and registering its model.

The job itself (training/) trains, scores champion and challenger on the same
evaluation images and writes its verdict (gate.json) next to the model; this
side only starts it and files what it produced: the version folder in the
registry, and the pointer switched when (and only when) the gate said so.

Two ways to run a job share this module: SageMaker's CreateTrainingJob on AWS
(`SageMakerJobs`) and a subprocess in the local cloud (localcloud/training_jobs.py).
"""

from __future__ import annotations

import io
import json
import re
import tarfile
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from screening import model_registry, resources
from screening.config import Settings
from screening.inference import CARD_FILE, MODEL_FILE
from screening.training_contract import (CHAMPION_CHANNEL, DEFAULT_CONDITION, DEFAULT_SITE, GATE_FILE,
                                         JOB_NAME_PREFIX, METRIC_DEFINITIONS, METRIC_NAMES,  # noqa: F401
                                         UPLOADS_CHANNEL, parse_metric_lines)

# Model bucket: training-data/<condition>/uploads/<label>/<site>/<file>, and SageMaker's
# training-output/<job>/output/model.tar.gz (the prefixes are defined in resources.py).
TRAINING_DATA_PREFIX = resources.TRAINING_DATA_PREFIX
TRAINING_OUTPUT_PREFIX = resources.TRAINING_OUTPUT_PREFIX
JOB_STATE_PREFIX = "training-jobs/"  # model bucket: the local runner's job records
UPLOAD_TYPES = {"image/jpeg": ".jpg", "image/png": ".png", "image/tiff": ".tif", "image/webp": ".webp",
                "image/bmp": ".bmp"}
# Which files of a job's model folder the registry keeps (the report folder too).
REGISTERED_FILES = re.compile(r"^(\w+\.tflite|\w+\.keras|model\.json|gate\.json|report/[\w.-]+)$")
RUNNING, COMPLETED, FAILED = "InProgress", "Completed", "Failed"
# Base-set counts travel with the training image; the API reads them from the bundled summary.
BASE_SET_SUMMARY = Path(__file__).resolve().parent.parent.parent / "training" / "base_set"


class JobAlreadyRunning(RuntimeError):
    def __init__(self, job: str) -> None:
        super().__init__(f"training job {job} is running")
        self.job = job


class UploadRejected(ValueError):
    pass


def job_name(condition: str = DEFAULT_CONDITION, now: datetime | None = None) -> str:
    now = now or datetime.now(timezone.utc)
    return f"{JOB_NAME_PREFIX}{condition}-{now:%Y%m%d-%H%M%S}"


def condition_of_job(job: str) -> str | None:
    """`screening-<condition>-<yyyymmdd>-<hhmmss>` -> condition."""
    if not job.startswith(JOB_NAME_PREFIX):
        return None
    parts = job[len(JOB_NAME_PREFIX):].rsplit("-", 2)
    return parts[0] if len(parts) == 3 else None


def uploads_prefix(condition: str) -> str:
    return f"{TRAINING_DATA_PREFIX}{condition}/uploads/"


# ---- labelled uploads and the data set -----------------------------------------------------------

def training_upload(s3, settings: Settings, condition: str, label: str, site: str | None,
                    content_type: str, class_names: tuple[str, ...]) -> dict:
    """A presigned PUT for one labelled training image under the condition's uploads."""
    site = site or DEFAULT_SITE
    if label not in class_names:
        raise UploadRejected(f"label must be one of {', '.join(class_names)} for {condition}")
    if not model_registry.valid_name(site):
        raise UploadRejected("site must be 1-100 letters, digits, '-', '_' or '.'")
    if content_type not in UPLOAD_TYPES:
        raise UploadRejected(f"content_type must be one of {', '.join(UPLOAD_TYPES)}")
    key = f"{uploads_prefix(condition)}{label}/{site}/{uuid.uuid4().hex}{UPLOAD_TYPES[content_type]}"
    url = s3.generate_presigned_url("put_object", Params={
        "Bucket": settings.model_bucket, "Key": key, "ContentType": content_type},
        ExpiresIn=settings.presigned_url_seconds)
    return {"upload_url": url, "method": "PUT", "headers": {"Content-Type": content_type}, "s3_key": key,
            "label": label, "site": site, "condition": condition, "expires_in": settings.presigned_url_seconds}


def upload_counts(s3, bucket: str, condition: str) -> dict:
    """Counts of labelled uploads per label and per site (and per site and label)."""
    by_label: dict[str, int] = {}
    by_site: dict[str, dict[str, int]] = {}
    prefix = uploads_prefix(condition)
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            parts = obj["Key"][len(prefix):].split("/")
            if len(parts) != 3:
                continue
            label, site, _ = parts
            by_label[label] = by_label.get(label, 0) + 1
            by_site.setdefault(site, {}).setdefault(label, 0)
            by_site[site][label] += 1
    return {"total": sum(by_label.values()), "by_label": by_label, "by_site": by_site}


def base_set_counts(condition: str, base_dir: Path = BASE_SET_SUMMARY) -> dict:
    """The bundled base set's counts (training/base_set/<condition>.json), or none."""
    path = Path(base_dir) / f"{condition}.json"
    if not path.is_file():
        return {"total": 0, "by_label": {}, "by_split": {}}
    summary = json.loads(path.read_text())
    return {"total": summary.get("total", 0), "by_label": summary.get("by_label", {}),
            "by_split": summary.get("by_split", {}), "source": summary.get("source")}


def dataset_summary(s3, settings: Settings, condition: str) -> dict:
    base = base_set_counts(condition)
    uploads = upload_counts(s3, settings.model_bucket, condition)
    by_label = dict(base["by_label"])
    for label, n in uploads["by_label"].items():
        by_label[label] = by_label.get(label, 0) + n
    return {"condition": condition, "total": base["total"] + uploads["total"], "by_label": by_label,
            "by_source": {"base_set": base, "uploads": uploads}, "by_site": uploads["by_site"]}


# ---- the champion ------------------------------------------------------------------------------

def ensure_champion(s3, settings: Settings, condition: str) -> str | None:
    """The registry's current version; the bundled model is registered and pointed at first,
    so that every job has a champion to beat and GET /models shows what serves."""
    pointer = model_registry.read_pointer(s3, settings.model_bucket, condition)
    if pointer:
        return pointer["version"]
    bundled = model_registry.bundled_model_dir(Path(settings.model_dir), condition)
    if bundled is None:
        return None
    card = json.loads((bundled / CARD_FILE).read_text())
    version = card["version"]
    if model_registry.read_card(s3, settings.model_bucket, condition, version) is None:
        model_registry.register_version(s3, settings.model_bucket, condition, version, {
            MODEL_FILE: (bundled / MODEL_FILE).read_bytes(), CARD_FILE: (bundled / CARD_FILE).read_bytes()})
    model_registry.promote_version(s3, settings.model_bucket, condition, version, "the bundled model")
    return version


# ---- SageMaker ---------------------------------------------------------------------------------

def training_job_request(settings: Settings, name: str, hyperparameters: dict[str, str],
                         condition: str = DEFAULT_CONDITION, champion: str | None = None,
                         with_uploads: bool = True) -> dict:
    """CreateTrainingJob: the base set is in the image; uploads and the champion come as channels."""
    bucket = settings.model_bucket

    def channel(channel_name: str, prefix: str) -> dict:
        return {"ChannelName": channel_name, "InputMode": "File", "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3DataDistributionType": "FullyReplicated",
            "S3Uri": f"s3://{bucket}/{prefix}"}}}

    channels = []
    if with_uploads:
        channels.append(channel(UPLOADS_CHANNEL, uploads_prefix(condition)))
    if champion:
        channels.append(channel(CHAMPION_CHANNEL, model_registry.version_prefix(condition, champion)))
    request = {
        "TrainingJobName": name,
        "AlgorithmSpecification": {"TrainingImage": settings.training_image_uri, "TrainingInputMode": "File",
                                   "MetricDefinitions": METRIC_DEFINITIONS},
        "RoleArn": settings.training_role_arn,
        "HyperParameters": {"model_version": name, "condition": condition,
                            **{k: str(v) for k, v in hyperparameters.items()}},
        "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/{TRAINING_OUTPUT_PREFIX}"},
        "ResourceConfig": {"InstanceType": settings.training_instance_type, "InstanceCount": 1,
                           "VolumeSizeInGB": 30},
        "StoppingCondition": {"MaxRuntimeInSeconds": settings.training_max_runtime_seconds},
        "EnableNetworkIsolation": True,
    }
    if channels:
        request["InputDataConfig"] = channels
    return request


def validate_hyperparameters(raw: object) -> dict[str, str]:
    """POST /retrain's optional hyperparameters: a flat object of strings (SageMaker's rule)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(isinstance(k, str) and isinstance(v, (str, int, float))
                                            and not isinstance(v, bool) for k, v in raw.items()):
        raise ValueError("hyperparameters must be an object of string values")
    return {k: str(v) for k, v in raw.items()}


def has_uploads(s3, bucket: str, condition: str) -> bool:
    return bool(s3.list_objects_v2(Bucket=bucket, Prefix=uploads_prefix(condition), MaxKeys=1).get("KeyCount"))


class SageMakerJobs:
    """Jobs on AWS: CreateTrainingJob / DescribeTrainingJob; one at a time per account and prefix."""

    def __init__(self, sagemaker, s3, settings: Settings) -> None:
        self.sagemaker, self.s3, self.settings = sagemaker, s3, settings

    def running(self) -> str | None:
        jobs = self.sagemaker.list_training_jobs(NameContains=JOB_NAME_PREFIX, StatusEquals=RUNNING,
                                                 MaxResults=1).get("TrainingJobSummaries", [])
        return jobs[0]["TrainingJobName"] if jobs else None

    def start(self, condition: str, hyperparameters: dict[str, str]) -> str:
        running = self.running()
        if running:
            raise JobAlreadyRunning(running)
        champion = ensure_champion(self.s3, self.settings, condition)
        name = job_name(condition)
        self.sagemaker.create_training_job(**training_job_request(
            self.settings, name, hyperparameters, condition, champion,
            with_uploads=has_uploads(self.s3, self.settings.model_bucket, condition)))
        return name

    def describe(self, job: str) -> dict | None:
        try:
            found = self.sagemaker.describe_training_job(TrainingJobName=job)
        except Exception as exc:  # noqa: BLE001 - ValidationException: no such job
            if "ValidationException" in str(getattr(exc, "response", {}).get("Error", {}).get("Code", "")):
                return None
            raise
        metrics = {m["MetricName"]: m["Value"] for m in found.get("FinalMetricDataList", [])}
        return job_status(job, found["TrainingJobStatus"], metrics, found.get("FailureReason"),
                          found.get("HyperParameters", {}))


def job_status(job: str, status: str, metrics: dict[str, float], failure: str | None,
               hyperparameters: dict[str, str], **extra) -> dict:
    """GET /retrain/{job}'s body, whichever runner ran the job."""
    planned = metrics.get("epochs") or hyperparameters.get("epochs")
    epochs = int(float(planned)) if str(planned).replace(".", "", 1).isdigit() else None
    epoch = int(metrics["epoch"]) if "epoch" in metrics else 0
    return {"training_job": job, "condition": hyperparameters.get("condition", condition_of_job(job)),
            "status": status, "progress": {"epoch": epoch, "epochs": epochs},
            "metrics": {k: v for k, v in metrics.items() if k not in ("epoch", "epochs")},
            "failure_reason": failure, **extra}


# ---- filing a finished job's model --------------------------------------------------------------

@dataclass(frozen=True)
class Registration:
    version: str
    promoted: bool
    reason: str


def register_model_files(s3, settings: Settings, condition: str, files: dict[str, bytes]) -> Registration:
    """File a finished job's model folder as a version; switch the pointer if its gate passed it."""
    for name in (MODEL_FILE, CARD_FILE, GATE_FILE):
        if name not in files:
            return Registration("", False, f"the job's model has no {name}")
    card = json.loads(files[CARD_FILE])
    gate = json.loads(files[GATE_FILE])
    version = card["version"]
    model_registry.register_version(s3, settings.model_bucket, condition, version, files)
    if gate.get("promote"):
        model_registry.promote_version(s3, settings.model_bucket, condition, version, gate.get("reason", ""))
    return Registration(version, bool(gate.get("promote")), gate.get("reason", ""))


def model_files_from_tarball(data: bytes) -> dict[str, bytes]:
    files = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar.getmembers():
            name = member.name.removeprefix("./")
            if member.isfile() and REGISTERED_FILES.match(name):
                files[name] = tar.extractfile(member).read()
    return files


def model_files_from_folder(folder: Path) -> dict[str, bytes]:
    folder = Path(folder)
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and REGISTERED_FILES.match(p.relative_to(folder).as_posix())}


def register_sagemaker_output(s3, settings: Settings, job: str) -> Registration:
    """The promote function: SageMaker's model.tar.gz -> the registry."""
    condition = condition_of_job(job) or DEFAULT_CONDITION
    archive = s3.get_object(Bucket=settings.model_bucket, Key=f"{TRAINING_OUTPUT_PREFIX}{job}/output/model.tar.gz")
    return register_model_files(s3, settings, condition, model_files_from_tarball(archive["Body"].read()))


def metrics_from_log(text: str) -> dict[str, float]:
    return parse_metric_lines(text)
