"""Tenancy with two clinics' API keys and an admin key, through the real API handler on moto.

Each request is an API Gateway proxy event carrying the key's id in
requestContext.identity.apiKeyId, as API Gateway sends it; the table has every
index of resources.TABLE_INDEXES, as the stack creates it.
"""

from __future__ import annotations

import json
from urllib.parse import quote_plus

import boto3
import pytest
from moto import mock_aws

from localcloud.lambda_context import LambdaContext
from screening import resources, tenancy
from tests.functions.proxy_events import proxy_event

KEYS = {"key-north": "north", "key-south": "south", "key-admin": tenancy.ADMIN}
TABLE = "tenancy-results"
BUCKET = "tenancy-images"


def create_results_table(dynamodb, name: str) -> None:
    attributes = {resources.TABLE_PARTITION_KEY} | {k for keys in resources.TABLE_INDEXES.values() for k in keys}
    dynamodb.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a in sorted(attributes)],
        KeySchema=[{"AttributeName": resources.TABLE_PARTITION_KEY, "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[
            {"IndexName": index, "Projection": {"ProjectionType": "ALL"},
             "KeySchema": [{"AttributeName": partition, "KeyType": "HASH"},
                           {"AttributeName": sort, "KeyType": "RANGE"}]}
            for index, (partition, sort) in resources.TABLE_INDEXES.items()])


@pytest.fixture
def cloud(monkeypatch):
    for name, value in {"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing",
                        "AWS_SECRET_ACCESS_KEY": "testing", "POWERTOOLS_METRICS_DISABLED": "true",
                        "RESULTS_TABLE": TABLE, "IMAGE_BUCKET": BUCKET,
                        "API_KEY_CLINICS": json.dumps(KEYS)}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    for name in ("QUEUE_URL", "DEAD_LETTER_QUEUE_URL", "MODEL_BUCKET"):
        monkeypatch.delenv(name, raising=False)
    with mock_aws():
        create_results_table(boto3.client("dynamodb"), TABLE)
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        from handlers.runtime import runtime

        runtime.cache_clear()
        yield
        runtime.cache_clear()


def call(key_id: str, method: str, path: str, body: bytes = b"", content_type: str = "", **kwargs) -> tuple[int, dict]:
    from handlers import api

    response = api.handler(proxy_event(method, path, body, content_type, api_key_id=key_id, **kwargs),
                           LambdaContext.for_function("api"))
    return response["statusCode"], json.loads(response["body"])


def screen(key_id: str, image: bytes) -> dict:
    status, body = call(key_id, "POST", "/predict", image, "image/jpeg")
    assert status == 200, body
    return body


def listing(key_id: str, query: str = "") -> list[str]:
    status, body = call(key_id, "GET", f"/predictions{query}")
    assert status == 200, body
    return [item["id"] for item in body["items"]]


def test_each_clinic_sees_only_its_own_records_and_the_admin_sees_all(cloud, sample_files):
    north = [screen("key-north", sample_files["glaucoma"][0].read_bytes()),
             screen("key-north", sample_files["normal"][0].read_bytes())]
    south = [screen("key-south", sample_files["normal"][1].read_bytes())]
    north_ids, south_ids = {r["id"] for r in north}, {r["id"] for r in south}

    assert set(listing("key-north")) == north_ids
    assert set(listing("key-south")) == south_ids
    assert set(listing("key-admin")) == north_ids | south_ids
    for label in ("normal", "glaucoma"):  # the model's labels, whatever they are, split by clinic
        query = f"?label={label}"
        assert set(listing("key-north", query)) == {r["id"] for r in north if r["label"] == label}
        assert set(listing("key-south", query)) == {r["id"] for r in south if r["label"] == label}
        assert set(listing("key-admin", query)) == {r["id"] for r in north + south if r["label"] == label}

    # lookup: another clinic's record is a 404, exactly like an id that does not exist
    def lookup(key_id: str, record_id: str) -> tuple[int, dict]:
        return call(key_id, "GET", f"/predictions/{record_id}", resource="/predictions/{prediction_id}",
                    path_parameters={"prediction_id": record_id})

    north_id = north[0]["id"]
    assert lookup("key-north", north_id)[1]["id"] == north_id
    assert lookup("key-admin", north_id)[1]["id"] == north_id
    status, hidden = lookup("key-south", north_id)
    assert status == 404 and hidden["error"] == "unknown_id"
    assert lookup("key-south", "0" * 32)[1]["error"] == hidden["error"]

    # status: per-clinic counts; the admin's are the deployment's
    counts = {key_id: call(key_id, "GET", "/status")[1]["counts"] for key_id in KEYS}
    def tally(records):
        return {label: sum(r["label"] == label for r in records) for label in ("normal", "glaucoma")} | {
            "rejected": 0}

    assert counts["key-north"] == tally(north) and counts["key-south"] == tally(south)
    assert counts["key-admin"] == tally(north + south)


def test_a_clinics_cursor_does_not_page_another_clinics_listing(cloud, sample_files):
    for image in sample_files["normal"][:3]:
        screen("key-north", image.read_bytes())
    status, page = call("key-north", "GET", "/predictions?limit=2")
    assert status == 200 and len(page["items"]) == 2 and page["next_cursor"]
    status, rest = call("key-north", "GET", f"/predictions?limit=2&cursor={page['next_cursor']}")
    assert status == 200 and len(rest["items"]) == 1
    status, refused = call("key-south", "GET", f"/predictions?limit=2&cursor={page['next_cursor']}")
    assert (status, refused["error"]) == (400, "invalid_cursor")


def test_an_unmapped_key_is_refused(cloud, sample_files):
    for path in ("/predictions", "/status"):
        status, body = call("key-stolen", "GET", path)
        assert (status, body["error"]) == (403, "unknown_api_key")
    status, body = call("", "POST", "/predict", sample_files["normal"][0].read_bytes(), "image/jpeg")
    assert (status, body["error"]) == (403, "unknown_api_key")
    assert listing("key-admin") == []  # nothing was stored


def test_uploads_and_the_s3_path_carry_the_clinic(cloud, sample_files):
    from handlers import sqs_consumer

    status, upload = call("key-north", "POST", "/uploads", b'{"content_type": "image/jpeg"}', "application/json")
    assert status == 201 and upload["s3_key"].startswith("incoming/north/")
    s3 = boto3.client("s3")
    etag = s3.put_object(Bucket=BUCKET, Key=upload["s3_key"],
                         Body=sample_files["glaucoma"][1].read_bytes())["ETag"].strip('"')

    # POST /predict by s3_key: the other clinic cannot even learn that the object exists
    by_key = json.dumps({"s3_key": upload["s3_key"]}).encode()
    status, body = call("key-south", "POST", "/predict", by_key, "application/json")
    assert (status, body["error"]) == (404, "unknown_s3_key")
    status, body = call("key-north", "POST", "/predict", by_key, "application/json")
    assert status == 200 and body["label"] == "glaucoma"

    # the S3 path (SQS -> consumer) records the clinic from the key
    key = "incoming/south/eye 1.jpg"
    etag = s3.put_object(Bucket=BUCKET, Key=key, Body=sample_files["normal"][2].read_bytes())["ETag"].strip('"')
    s3_event = {"Records": [{"eventName": "ObjectCreated:Put", "eventTime": "2026-11-22T10:00:00.000Z",
                             "s3": {"bucket": {"name": BUCKET},
                                    "object": {"key": quote_plus(key), "eTag": etag, "size": 1000}}}]}
    message = {"messageId": "m1", "receiptHandle": "m1", "body": json.dumps(s3_event),
               "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {}, "md5OfBody": "",
               "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
               "awsRegion": "us-east-1"}
    assert sqs_consumer.handler({"Records": [message]},
                                LambdaContext.for_function("consumer"))["batchItemFailures"] == []
    [south_record] = call("key-south", "GET", "/predictions")[1]["items"]
    assert south_record["key"] == key
    assert [r["key"] for r in call("key-north", "GET", "/predictions")[1]["items"]] == [upload["s3_key"]]
    # an operator's drop outside any clinic's folder belongs to no clinic: admin only
    assert tenancy.clinic_of_key("incoming/loose.jpg", json.dumps(KEYS)) is None
    assert tenancy.clinic_of_key("incoming/elsewhere/x.jpg", json.dumps(KEYS)) is None


def test_only_the_admin_key_starts_retraining(cloud):
    from handlers import retrain

    for key_id, error in (("key-north", "admin_only"), ("key-stolen", "unknown_api_key")):
        response = retrain.start_handler(proxy_event("POST", "/retrain", api_key_id=key_id),
                                         LambdaContext.for_function("retrain"))
        assert response["statusCode"] == 403 and json.loads(response["body"])["error"] == error


def test_without_a_key_map_the_deployment_is_single_tenant():
    """The local cloud's default: no API_KEY_CLINICS, everyone is the admin; records carry no clinic."""
    event = proxy_event("GET", "/predictions", api_key_id="anything")
    assert tenancy.caller_from_event(event, "").is_admin
    with pytest.raises(ValueError):
        tenancy.parse_key_map('{"k": "Not A Clinic"}')
    assert tenancy.listing_query(None, None) == (resources.NEWEST_FIRST_INDEX, "record_type", resources.RECORD_TYPE)
    assert tenancy.listing_query("north", "normal") == (resources.BY_CLINIC_LABEL_INDEX, "clinic_label",
                                                        "north#normal")
