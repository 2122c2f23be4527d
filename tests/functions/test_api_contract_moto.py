"""API handler pieces that need no HTTP: the upload policy, record bounds, idempotent retries."""

from __future__ import annotations

import base64
import json

import boto3

from localcloud.api_gateway import proxy_event
from localcloud.lambda_context import LambdaContext
from screening import resources


def call(method: str, path: str, body: bytes = b"", headers: dict | None = None) -> tuple[int, dict, dict]:
    from handlers import api

    event = proxy_event(method, path, {"x-api-key": "k", **(headers or {})}, body, stage="prod")
    response = api.handler(event, LambdaContext.for_function("api"))
    headers = {**(response.get("headers") or {}),
               **{k: ", ".join(v) for k, v in (response.get("multiValueHeaders") or {}).items()}}
    return response["statusCode"], json.loads(response["body"]), headers


def test_presigned_post_fixes_key_and_content_type_and_bounds_the_size(aws):
    from handlers.runtime import runtime

    status, body, _ = call("POST", "/uploads", json.dumps({"content_type": "image/png"}).encode(),
                           {"content-type": "application/json"})
    assert status == 201 and body["method"] == "POST"
    policy = json.loads(base64.b64decode(body["fields"]["policy"]))
    conditions = policy["conditions"]
    limit = runtime().settings.max_image_bytes
    assert ["content-length-range", 1, limit] in conditions and body["max_bytes"] == limit
    assert {"Content-Type": "image/png"} in conditions and body["fields"]["Content-Type"] == "image/png"
    assert {"key": body["s3_key"]} in conditions and body["s3_key"].startswith(resources.INCOMING_PREFIX)
    assert {"bucket": aws.image_bucket} in conditions


def test_json_nested_100000_deep_is_a_400_not_a_recursion_error(aws):
    deep = b"[" * 100_000 + b"]" * 100_000
    for path in ("/predict", "/uploads"):
        status, body, _ = call("POST", path, deep, {"content-type": "application/json"})
        assert status == 400 and body["error"] == "json_too_deep", path


def test_records_stay_far_below_dynamodb_item_limit(aws, sample_files):
    from handlers.runtime import runtime
    from screening.service import ScreeningRequest

    service = runtime().service
    request = ScreeningRequest(data=sample_files["normal"][0].read_bytes(),
                               source={"source": "api-batch", "field": "f" * 450_000, "key": "k" * 5000})
    [result] = service.screen_and_store([request])
    assert result.stored and result.error is None
    item = boto3.resource("dynamodb").Table(aws.results_table).get_item(Key={"id": request.record_id})["Item"]
    assert len(json.dumps(item, default=str)) < 20_000
    assert item["field"] == "f" * 1024


def test_retry_with_idempotency_key_after_a_lost_answer_stores_nothing_twice(aws, sample_files, monkeypatch):
    """The record is stored, then the function dies before saving the idempotent answer: a retry
    derives the same record id, finds the record and answers with it; the counters move once."""
    from aws_lambda_powertools.utilities.idempotency.persistence.dynamodb import DynamoDBPersistenceLayer

    image = sample_files["glaucoma"][0].read_bytes()
    headers = {"content-type": "image/jpeg", "Idempotency-Key": "lost-answer-1"}
    real_save = DynamoDBPersistenceLayer.save_success
    monkeypatch.setattr(DynamoDBPersistenceLayer, "save_success",
                        lambda self, data, result: (_ for _ in ()).throw(ConnectionError("died")))
    status, body, _ = call("POST", "/predict", image, headers)
    assert status == 500 and body["error"] == "internal_error"
    monkeypatch.setattr(DynamoDBPersistenceLayer, "save_success", real_save)
    # The in-progress item expires with the invocation; here the retry comes after it was released.
    table = boto3.resource("dynamodb").Table(aws.results_table)
    for item in table.scan()["Items"]:
        if "idempotency_status" in item:
            table.delete_item(Key={"id": item["id"]})
    status, retried, _ = call("POST", "/predict", image, headers)
    assert status == 200
    status, replayed, replay_headers = call("POST", "/predict", image, headers)
    assert replayed == retried and replay_headers.get("Idempotent-Replayed") == "true"
    records = [i for i in table.scan()["Items"] if i.get("record_type") == resources.RECORD_TYPE]
    assert [r["id"] for r in records] == [retried["id"]]
    counters = table.get_item(Key={"id": resources.COUNTERS_ID})["Item"]
    assert int(counters["count_glaucoma"]) + int(counters.get("count_normal", 0)) == 1


def test_same_key_with_another_body_is_422_and_in_flight_is_409(aws, sample_files):
    first = sample_files["normal"][0].read_bytes()
    headers = {"content-type": "image/jpeg", "Idempotency-Key": "k-1"}
    assert call("POST", "/predict", first, headers)[0] == 200
    status, body, _ = call("POST", "/predict", sample_files["normal"][1].read_bytes(), headers)
    assert status == 422 and body["error"] == "idempotency_key_reused"
    # Another caller (API key) may use the same key for its own request.
    status, _, _ = call("POST", "/predict", sample_files["normal"][1].read_bytes(), {**headers, "x-api-key": "k2"})
    assert status == 200
