"""mock_aws with the stack's resources provisioned, and SQS/S3 event builders, for handler tests."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from localcloud.provision import provision
from screening.resources import ResourceNames


@pytest.fixture
def aws(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    with mock_aws():
        names = ResourceNames.for_stage("unit")
        local = provision(boto3.session.Session(), names)
        monkeypatch.setenv("RESULTS_TABLE", names.results_table)
        monkeypatch.setenv("IMAGE_BUCKET", names.image_bucket)
        monkeypatch.setenv("QUEUE_URL", local.queue_url)
        monkeypatch.setenv("DEAD_LETTER_QUEUE_URL", local.dead_letter_queue_url)
        from handlers.runtime import runtime

        runtime.cache_clear()
        yield names
        runtime.cache_clear()


def sqs_record(message_id: str, body: dict) -> dict:
    return {"messageId": message_id, "receiptHandle": message_id, "body": json.dumps(body),
            "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {}, "md5OfBody": "",
            "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
            "awsRegion": "us-east-1"}


def s3_event(bucket: str, raw_key: str, etag: str, size: int | None = 1000) -> dict:
    obj = {"key": raw_key, "eTag": etag}
    if size is not None:
        obj["size"] = size
    return {"Records": [{"eventName": "ObjectCreated:Put", "eventTime": "2026-11-22T10:00:00.000Z",
                         "s3": {"bucket": {"name": bucket}, "object": obj}}]}
