"""The API's body limit holds end to end: every body Lambda can still receive is either screened
or answered with the handler's own 413, never lost to Lambda's 6 MB synchronous payload cap.

Bodies arrive base64-encoded in the proxy event (API Gateway binary media types), so the
event, not the body, must fit in resources.LAMBDA_SYNC_PAYLOAD_BYTES. Real proxy events
(tests/functions/proxy_events.py), real handler, moto.
"""

from __future__ import annotations

import io
import json

import boto3
import pytest
from moto import mock_aws

from localcloud.lambda_context import LambdaContext
from screening import resources
from tests.functions.proxy_events import proxy_event
from tests.functions.test_tenancy import BUCKET, TABLE, create_results_table

LAMBDA_CAP = resources.LAMBDA_SYNC_PAYLOAD_BYTES


@pytest.fixture
def cloud(monkeypatch):
    for name, value in {"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing",
                        "AWS_SECRET_ACCESS_KEY": "testing", "POWERTOOLS_METRICS_DISABLED": "true",
                        "RESULTS_TABLE": TABLE, "IMAGE_BUCKET": BUCKET}.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ENDPOINT_URL", "QUEUE_URL", "DEAD_LETTER_QUEUE_URL", "MODEL_BUCKET", "API_KEY_CLINICS",
                 "MAX_API_BODY_BYTES", "MAX_BATCH_BYTES"):
        monkeypatch.delenv(name, raising=False)
    with mock_aws():
        create_results_table(boto3.client("dynamodb"), TABLE)
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        from handlers.runtime import runtime

        runtime.cache_clear()
        yield
        runtime.cache_clear()


def event_size(event: dict) -> int:
    return len(json.dumps(event).encode())


def largest_body_lambda_accepts(path: str, content_type: str) -> int:
    """The raw body size whose proxy event is as large as Lambda's synchronous cap allows."""
    without_body = event_size(proxy_event("POST", path, b"", content_type)) + len('"body": ""') - len("null")
    return (LAMBDA_CAP - without_body) // 4 * 3


def invoke(event: dict) -> tuple[int, dict]:
    from handlers import api

    assert event_size(event) <= LAMBDA_CAP, "Lambda would refuse this invocation before the handler ran"
    response = api.handler(event, LambdaContext.for_function("api"))
    return response["statusCode"], json.loads(response["body"])


def test_the_event_around_a_body_stays_within_the_overhead_budget():
    assert event_size(proxy_event("POST", "/predict/batch", b"", "multipart/form-data; boundary=x" * 2)) \
        < resources.PROXY_EVENT_OVERHEAD_BYTES / 20


def test_the_largest_body_lambda_accepts_gets_the_handlers_413(cloud):
    """Was 7 MiB: a 4.5-6 MB body passed the handler's check on paper and failed in Lambda."""
    size = largest_body_lambda_accepts("/predict", "image/jpeg")
    assert resources.MAX_API_BODY_BYTES < size < resources.MAX_API_BODY_BYTES * 1.1
    event = proxy_event("POST", "/predict", b"\xff" * size, "image/jpeg")
    assert LAMBDA_CAP - 64 < event_size(event) <= LAMBDA_CAP
    status, body = invoke(event)
    assert (status, body["error"]) == (413, "body_too_large")
    assert str(resources.MAX_API_BODY_BYTES) in body["message"]
    status, body = invoke(proxy_event("POST", "/predict", b"\xff" * (resources.MAX_API_BODY_BYTES + 1),
                                      "image/jpeg"))
    assert (status, body["error"]) == (413, "body_too_large")


def test_a_batch_over_the_limit_gets_the_handlers_413(cloud, sample_files):
    boundary = "b0undary"
    part = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"a\"; filename=\"a.jpg\"\r\n"
            f"Content-Type: image/jpeg\r\n\r\n").encode()
    filler = b"\0" * (resources.MAX_BATCH_BYTES + 1 - len(part) - len(f"\r\n--{boundary}--\r\n"))
    data = part + filler + f"\r\n--{boundary}--\r\n".encode()
    assert len(data) == resources.MAX_BATCH_BYTES + 1
    status, body = invoke(proxy_event("POST", "/predict/batch", data, f"multipart/form-data; boundary={boundary}"))
    assert status == 413 and body["error"] in ("body_too_large", "batch_too_large")


def test_an_image_of_exactly_the_ceiling_is_screened(cloud, sample_files):
    """The limit is real in the other direction too: a body of MAX_API_BODY_BYTES fits Lambda and is served."""
    from PIL import Image

    image = Image.open(sample_files["glaucoma"][0]).convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")  # PNG ignores bytes after its IEND chunk
    data = buffer.getvalue()
    data += b"\0" * (resources.MAX_API_BODY_BYTES - len(data))
    assert len(data) == resources.MAX_API_BODY_BYTES
    status, body = invoke(proxy_event("POST", "/predict", data, "image/png"))
    assert status == 200, body
    assert body["label"] in ("normal", "glaucoma") and body["image"]["bytes"] == resources.MAX_API_BODY_BYTES
