"""The Lambda handlers called directly, as Lambda calls them, against moto (mock_aws)."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote_plus

import boto3
import pytest
from moto import mock_aws

from localcloud.lambda_context import LambdaContext
from localcloud.provision import provision
from screening.records import s3_record_id
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


def s3_event(bucket: str, raw_key: str, etag: str) -> dict:
    return {"Records": [{"eventName": "ObjectCreated:Put", "eventTime": "2026-11-22T10:00:00.000Z",
                         "s3": {"bucket": {"name": bucket},
                                "object": {"key": raw_key, "eTag": etag, "size": 1000}}}]}


def test_consumer_reports_only_the_failed_message(aws, sample_files):
    from handlers import sqs_consumer

    s3 = boto3.client("s3")
    key = "incoming/a folder/ojo+1.jpg"
    etag = s3.put_object(Bucket=aws.image_bucket, Key=key,
                         Body=sample_files["glaucoma"][-1].read_bytes())["ETag"].strip('"')
    event = {"Records": [
        sqs_record("good", s3_event(aws.image_bucket, quote_plus(key), etag)),
        sqs_record("test-event", {"Service": "Amazon S3", "Event": "s3:TestEvent"}),
        sqs_record("missing-bucket", s3_event("no-such-bucket", "incoming/x.jpg", "e")),
        sqs_record("not-s3", {"hello": "world"}),
    ]}
    response = sqs_consumer.handler(event, LambdaContext.for_function("consumer"))
    failed = sorted(f["itemIdentifier"] for f in response["batchItemFailures"])
    assert failed == ["missing-bucket", "not-s3"]
    table = boto3.resource("dynamodb").Table(aws.results_table)
    item = table.get_item(Key={"id": s3_record_id(aws.image_bucket, key, etag)})["Item"]
    assert item["key"] == key and item["label"] == "glaucoma" and item["status"] == "ok"


def test_consumer_records_a_deleted_object_as_rejected(aws):
    from handlers import sqs_consumer

    event = {"Records": [sqs_record("gone", s3_event(aws.image_bucket, "incoming/gone.jpg", "abc"))]}
    response = sqs_consumer.handler(event, LambdaContext.for_function("consumer"))
    assert response["batchItemFailures"] == []
    item = boto3.resource("dynamodb").Table(aws.results_table).get_item(
        Key={"id": s3_record_id(aws.image_bucket, "incoming/gone.jpg", "abc")})["Item"]
    assert item["status"] == "rejected" and item["reason"] == "object_missing"


def test_api_handler_decodes_a_base64_proxy_event(aws, sample_files):
    from handlers import api
    from localcloud.api_gateway import proxy_event

    event = proxy_event("POST", "/predict", {"content-type": "image/jpeg"},
                        sample_files["normal"][3].read_bytes(), stage="prod")
    assert event["isBase64Encoded"] and base64.b64decode(event["body"])[:2] == b"\xff\xd8"
    response = api.handler(event, LambdaContext.for_function("api"))
    assert response["statusCode"] == 200
    assert json.loads(response["body"])["label"] == "normal"
