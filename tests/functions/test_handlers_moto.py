"""The Lambda handlers called directly, as Lambda calls them, against moto (mock_aws)."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote_plus

import boto3

from localcloud.lambda_context import LambdaContext
from screening.records import s3_record_id
from tests.functions.conftest import s3_event, sqs_record


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


def test_aws_calls_name_the_service_and_records_go_through_the_plain_client(aws, sample_files):
    """Every AWS client sends the service's fixed User-Agent (CloudTrail shows who called; botocore
    builds no default one per request), and the results table is written and read through the plain
    DynamoDB client: the record an API call stored reads back whole through boto3's Table too."""
    from handlers import api
    from handlers.runtime import runtime
    from localcloud.api_gateway import proxy_event

    rt = runtime()
    agents: list[str] = []
    for client in (rt.s3, rt.sqs, rt.service.store.client):
        client.meta.events.register("before-send",
                                    lambda request, **_: agents.append(request.headers["User-Agent"]))
    response = api.handler(proxy_event("POST", "/predict", {"content-type": "image/jpeg"},
                                       sample_files["glaucoma"][0].read_bytes(), stage="prod"),
                           LambdaContext.for_function("api"))
    record = json.loads(response["body"])
    rt.s3.list_objects_v2(Bucket=aws.image_bucket)
    rt.sqs.get_queue_attributes(QueueUrl=rt.settings.queue_url, AttributeNames=["All"])
    assert len(agents) == 3  # the record's write, the listing, the queue's attributes
    for agent in agents:
        assert (agent.decode() if isinstance(agent, bytes) else agent).startswith(
            f"glaucoma-screening Boto3/{boto3.__version__} Botocore/")
    assert not hasattr(rt.service.store.client, "Table")  # a client, not the resource layer
    # no client-side validation (the service validates): a str where a bool belongs is not refused here
    rt.service.store.client.get_item(TableName=aws.results_table, Key={"id": {"S": "none"}},
                                     ConsistentRead="yes")
    stored = boto3.resource("dynamodb").Table(aws.results_table).get_item(Key={"id": record["id"]})["Item"]
    assert stored["label"] == record["label"] and float(stored["probability"]) == record["probability"]
    assert rt.service.store.get(record["id"])["heatmap"] == record["heatmap"]
