"""The retraining loop end to end: labelled uploads -> a job -> the gate -> a served version.

Real parts: moto's server over HTTP (presigned PUTs go to it), the API
handler invoked with API Gateway proxy events, the local runner spawning the
training entry point (`python -m training.sagemaker train`) as a subprocess
with the SageMaker environment, and the registry's pointer read by the running
handlers. The jobs fit the invariant head (1 re-acquired copy) on the bundled base set's
stored features plus 20 uploads, and are judged on the base test split plus the held-out uploads.
"""

from __future__ import annotations

import io
import json
import time
import uuid
from datetime import datetime, timedelta, timezone
from urllib.parse import quote_plus

import boto3
import pytest
import requests
from PIL import Image, ImageOps

from screening import resources
from tests.conftest import BUNDLED_MODEL_VERSION

# The base set's stored features (training/base_set/) plus the uploads, 1 re-acquired copy each.
TINY = {"epochs": "3", "batch_size": "32", "augmented_copies": "1", "patience": "10",
        "upload_holdout_fraction": "0.5",
        "invariance_variants": "grey"}  # the report's suite cut to grey + colour shift: minutes off the test
BUNDLED = BUNDLED_MODEL_VERSION
SITE = "clinic-a"


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    from moto.server import ThreadedMotoServer

    from localcloud.cloud import EndpointSession, free_port
    from localcloud.provision import provision
    from screening.resources import ResourceNames

    tmp = tmp_path_factory.mktemp("retraining-loop")
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    session = boto3.session.Session(aws_access_key_id="x", aws_secret_access_key="x", region_name="us-east-1")
    names = ResourceNames.for_stage("loop")
    local = provision(EndpointSession(session, endpoint), names)
    env = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x",
           "AWS_DEFAULT_REGION": "us-east-1", "RESULTS_TABLE": names.results_table,
           "IMAGE_BUCKET": names.image_bucket, "MODEL_BUCKET": names.model_bucket,
           "QUEUE_URL": local.queue_url, "DEAD_LETTER_QUEUE_URL": local.dead_letter_queue_url,
           "TRAINING_RUNNER": "local", "TRAINING_STATE_DIR": str(tmp / "state"),
           "MODEL_CACHE_DIR": str(tmp / "model-cache"), "MODEL_REFRESH_SECONDS": "0",
           "TRAINING_MAX_RUNTIME_SECONDS": "300", "POWERTOOLS_METRICS_DISABLED": "true"}
    patch = pytest.MonkeyPatch()
    for key, value in env.items():
        patch.setenv(key, value)
    from handlers.runtime import runtime

    runtime.cache_clear()
    yield names
    runtime.cache_clear()
    patch.undo()
    server.stop()


def call(method: str, path: str, body: dict | bytes | None = None, query: dict | None = None,
         content_type: str = "application/json") -> tuple[int, dict]:
    from handlers import api
    from localcloud.lambda_context import LambdaContext

    binary = isinstance(body, bytes)
    raw = body if binary else (json.dumps(body).encode() if body is not None else b"")
    import base64

    event = {"resource": path, "path": path, "httpMethod": method, "headers": {"content-type": content_type},
             "multiValueHeaders": {"content-type": [content_type]},
             "queryStringParameters": query, "multiValueQueryStringParameters":
                 {k: [v] for k, v in query.items()} if query else None,
             "pathParameters": None, "stageVariables": None,
             "requestContext": {"resourcePath": path, "httpMethod": method, "path": path, "stage": "test",
                                "requestId": uuid.uuid4().hex, "identity": {"sourceIp": "127.0.0.1"}},
             "body": (base64.b64encode(raw).decode() if binary else raw.decode()) if raw else None,
             "isBase64Encoded": binary and bool(raw)}
    response = api.handler(event, LambdaContext.for_function("api"))
    return response["statusCode"], json.loads(response["body"])


def wait_for_job(job: str, timeout_s: float = 240) -> tuple[dict, list]:
    progress, deadline = [], time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status, body = call("GET", f"/retrain/{job}")
        assert status == 200, body
        progress.append(body["progress"])
        if body["status"] != "InProgress":
            return body, progress
        time.sleep(1.0)
    raise AssertionError(f"job {job} still running after {timeout_s} s")


def twenty_images(sample_files) -> list[tuple[str, bytes]]:
    """10 per class: the 6 samples of each, and 4 mirrored copies (other bytes, same label)."""
    images = []
    for label, files in sample_files.items():
        for i in range(10):
            image = Image.open(files[i % len(files)]).convert("RGB")
            if i >= len(files):
                image = ImageOps.mirror(image)
            out = io.BytesIO()
            image.save(out, "JPEG", quality=92)
            images.append((label, out.getvalue()))
    return images


def predict_version(sample_files) -> str:
    status, body = call("POST", "/predict", sample_files["glaucoma"][0].read_bytes(), content_type="image/jpeg")
    assert status == 200, body
    return body["model_version"]


def s3_path_version(cloud, sample_files) -> str:
    """An image through the S3 path: upload, the bucket's SQS message, the consumer, the record."""
    from handlers import sqs_consumer
    from handlers.runtime import runtime
    from localcloud.lambda_context import LambdaContext
    from screening.records import s3_record_id

    s3, sqs = boto3.client("s3"), boto3.client("sqs")
    key = f"{resources.INCOMING_PREFIX}{uuid.uuid4().hex}.jpg"
    etag = s3.put_object(Bucket=cloud.image_bucket, Key=key,
                         Body=sample_files["normal"][0].read_bytes())["ETag"].strip('"')
    queue = runtime().settings.queue_url
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=2).get("Messages", [])
    records = [{"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {}, "md5OfBody": "",
                "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:1:q", "awsRegion": "us-east-1"}
               for m in messages if quote_plus(key) in m["Body"] or key in m["Body"]]
    assert records, "the upload's S3 event did not reach the queue"
    sqs_consumer.handler({"Records": records}, LambdaContext.for_function("consumer"))
    record = runtime().service.store.get(s3_record_id(cloud.image_bucket, key, etag))
    return record["model_version"]


@pytest.mark.slow
def test_uploads_retrain_gate_promote_serve_and_roll_back(cloud, sample_files):
    # -- 20 labelled uploads for one site, through presigned PUTs -----------------------------------
    for label, data in twenty_images(sample_files):
        status, upload = call("POST", "/uploads/training", {"label": label, "site": SITE,
                                                            "content_type": "image/jpeg"})
        assert status == 201, upload
        put = requests.put(upload["upload_url"], data=data, headers=upload["headers"], timeout=10)
        assert put.status_code == 200
    status, bad = call("POST", "/uploads/training", {"label": "cataract"})
    assert status == 400 and bad["error"] == "invalid_upload"
    status, dataset = call("GET", "/dataset")
    assert dataset["by_site"] == {SITE: {"normal": 10, "glaucoma": 10}}
    assert dataset["by_source"]["uploads"]["total"] == 20

    # -- a job with a lenient gate is promoted; a second request meanwhile gets 409 -------------------
    lenient = {**TINY, "gate_auc_margin": "1.0", "gate_min_sensitivity": "0"}
    status, started = call("POST", "/retrain", {"hyperparameters": lenient})
    assert status == 202, started
    job = started["training_job"]
    status, conflict = call("POST", "/retrain", {"hyperparameters": TINY})
    assert status == 409 and conflict["training_job"] == job
    assert predict_version(sample_files) == BUNDLED  # the champion serves while the job runs
    done, progress = wait_for_job(job)
    assert done["status"] == "Completed" and done["promoted"] is True, done
    assert done["progress"]["epochs"] == 3 and done["progress"]["epoch"] == 1  # the head: one pass
    decision = done["decision"]
    assert decision["champion"]["version"] == BUNDLED and decision["challenger"]["version"] == job
    assert decision["evaluation_set"]["per_site"]["base"] == 105 and decision["evaluation_set"]["per_site"][SITE]
    for side in ("champion", "challenger"):  # both scored on the same images: base test + held-out uploads
        assert set(decision[side]["per_site"]) == {"base", SITE}
        assert decision[side]["overall"]["n"] == decision["evaluation_set"]["images"]
    assert "gate_challenger_auc" in done["metrics"]

    # -- the running handlers serve the new version, without a restart, in the API and the S3 path ---
    assert predict_version(sample_files) == job
    assert s3_path_version(cloud, sample_files) == job
    status, models = call("GET", "/models")
    assert models["current"]["version"] == job
    by_version = {v["version"]: v for v in models["versions"]}
    assert set(by_version) == {BUNDLED, job} and by_version[job]["decision"]["promote"] is True

    # -- a crashing job leaves the champion serving, with its reason visible -------------------------
    status, crashing = call("POST", "/retrain", {"hyperparameters": {"epochs": "many"}})
    assert status == 202
    failed, _ = wait_for_job(crashing["training_job"], timeout_s=120)
    assert failed["status"] == "Failed" and "epochs='many' is not a valid int" in failed["failure_reason"]
    assert predict_version(sample_files) == job

    # -- rollback in one call -------------------------------------------------------------------------
    status, rolled = call("POST", f"/models/{BUNDLED}/promote")
    assert status == 200 and rolled["current"]["version"] == BUNDLED and rolled["current"]["previous"] == job
    assert predict_version(sample_files) == BUNDLED
    status, missing = call("POST", "/models/no-such-version/promote")
    assert status == 404 and missing["error"] == "unknown_version"

    # -- a deliberately worse challenger (random trunk, untrained head) is rejected and kept ---------
    # (at 64 px, a shorter job: 35 s against 45 at 224; the gate scores each model at its own input size)
    status, worse = call("POST", "/retrain", {"hyperparameters": {
        **TINY, "epochs": "1", "learning_rate": "0", "pretrained": "false", "image_size": "64"}})
    assert status == 202
    rejected, _ = wait_for_job(worse["training_job"])
    assert rejected["status"] == "Completed" and rejected["promoted"] is False, rejected
    assert rejected["decision"]["champion"]["version"] == BUNDLED
    assert rejected["decision"]["challenger"]["overall"]["roc_auc"] < rejected["decision"]["champion"]["overall"]["roc_auc"]
    status, models = call("GET", "/models")
    assert models["current"]["version"] == BUNDLED
    assert {v["version"]: v for v in models["versions"]}[worse["training_job"]]["decision"]["promote"] is False
    assert predict_version(sample_files) == BUNDLED

    # -- and forward again, to the promoted job's model -----------------------------------------------
    status, forward = call("POST", f"/models/{job}/promote")
    assert status == 200 and predict_version(sample_files) == job
    status, _ = call("GET", "/models", query={"condition": "cataract"})
    assert status == 200


def test_the_schedule_fires_a_job_at_the_configured_time(cloud):
    """The one schedule expression, run locally: a clock 0.3 s before Sunday 03:00 UTC."""
    from handlers.runtime import runtime
    from localcloud.schedule import RetrainScheduler
    from localcloud.training_jobs import LocalTrainingJobs

    offset = datetime(2026, 11, 29, 3, 0, tzinfo=timezone.utc) - timedelta(seconds=0.3) - datetime.now(timezone.utc)
    jobs = LocalTrainingJobs(boto3.client("s3"), runtime().settings)
    started = []
    # A budget that fails at once: what is tested here is that the schedule starts a job.
    scheduler = RetrainScheduler(runtime().settings.retrain_schedule,
                                 lambda: started.append(jobs.start("glaucoma", {"epochs": "0x"})),
                                 clock=lambda: datetime.now(timezone.utc) + offset).start()
    try:
        deadline = time.monotonic() + 10
        while not started and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        scheduler.stop()
    assert len(started) == 1 and started[0].startswith("screening-glaucoma-")
    failed, _ = wait_for_job(started[0], timeout_s=120)
    assert failed["status"] == "Failed"
