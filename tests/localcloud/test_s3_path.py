"""The S3 path over the local cloud: S3 notification -> SQS -> consumer -> DynamoDB."""

from __future__ import annotations

import json

from screening.records import s3_record_id
from tests.conftest import BUNDLED_MODEL_VERSION
from tests.localcloud.conftest import wait_for


def put(cloud, key: str, body: bytes) -> str:
    return cloud.client("s3").put_object(Bucket=cloud.names.image_bucket, Key=key, Body=body)["ETag"]


def record_for(table, cloud, key: str, etag: str):
    return lambda: table.get_item(Key={"id": s3_record_id(cloud.names.image_bucket, key, etag)},
                                  ConsistentRead=True).get("Item")


def test_dropped_image_has_its_record_within_two_seconds(cloud, table, sample_dir):
    key = "incoming/clinic-7/Im353.jpg"
    etag = put(cloud, key, (sample_dir / "glaucoma/Im353_g_ACRIMA.jpg").read_bytes())
    item, waited = wait_for(record_for(table, cloud, key, etag), timeout=10)
    assert item is not None and waited < 2.0, f"record after {waited:.2f} s"
    assert item["status"] == "ok" and item["label"] == "glaucoma"
    assert item["bucket"] == cloud.names.image_bucket and item["key"] == key
    assert item["etag"] == etag.strip('"') and item["model_version"] == BUNDLED_MODEL_VERSION
    assert {"probability", "threshold", "quality_flags", "latency_ms", "created_at", "received_at",
            "version_id", "expires_at"} <= set(item)


def test_keys_with_spaces_plus_and_unicode_are_decoded(cloud, table, sample_dir):
    key = "incoming/Clínica São João/ojo izquierdo+1 (ñ).jpg"
    etag = put(cloud, key, (sample_dir / "normal/Im024_ACRIMA.jpg").read_bytes())
    item, _ = wait_for(record_for(table, cloud, key, etag))
    assert item is not None and item["key"] == key and item["label"] == "normal"


def test_bad_image_gets_a_rejected_record_and_is_not_retried(cloud, table):
    key = "incoming/broken.jpg"
    etag = put(cloud, key, b"\xff\xd8\xff\xe0 this is not a jpeg")
    item, _ = wait_for(record_for(table, cloud, key, etag))
    assert item is not None and item["status"] == "rejected" and item["reason"] == "not_an_image"
    assert "label" not in item


def test_duplicate_delivery_writes_one_record_and_runs_the_model_once(cloud, table, sample_dir):
    key = "incoming/dup/Im331.jpg"
    etag = put(cloud, key, (sample_dir / "glaucoma/Im331_g_ACRIMA.jpg").read_bytes())
    first, _ = wait_for(record_for(table, cloud, key, etag))
    assert first is not None
    counters_before = table.get_item(Key={"id": "#counters"}, ConsistentRead=True)["Item"]
    # Redeliver the very message S3 sent, twice, as SQS at-least-once delivery may.
    event = {"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                          "eventTime": "2026-11-22T00:00:00.000Z",
                          "s3": {"bucket": {"name": cloud.names.image_bucket},
                                 "object": {"key": "incoming/dup/Im331.jpg", "eTag": etag.strip('"'),
                                            "size": 1}}}]}
    sqs = cloud.client("sqs")
    for _ in range(2):
        sqs.send_message(QueueUrl=cloud.resources.queue_url, MessageBody=json.dumps(event))
    drained, _ = wait_for(lambda: _queue_empty(sqs, cloud.resources.queue_url), timeout=10)
    assert drained
    after = table.get_item(Key={"id": first["id"]}, ConsistentRead=True)["Item"]
    assert after == first  # not rewritten: same created_at, same latency
    counters_after = table.get_item(Key={"id": "#counters"}, ConsistentRead=True)["Item"]
    assert counters_after.get("count_glaucoma") == counters_before.get("count_glaucoma")
    matching = [i for i in table.scan()["Items"] if i.get("key") == key]
    assert len(matching) == 1


def test_message_that_keeps_failing_lands_in_the_dlq(cloud):
    sqs = cloud.client("sqs")
    # An event for a bucket that does not exist: reading it fails every time (a transient-looking fault).
    event = {"Records": [{"eventName": "ObjectCreated:Put",
                          "s3": {"bucket": {"name": "no-such-bucket-anywhere"},
                                 "object": {"key": "incoming/ghost.jpg", "eTag": "abc", "size": 10}}}]}
    sqs.send_message(QueueUrl=cloud.resources.queue_url, MessageBody=json.dumps(event))
    dead, waited = wait_for(lambda: _receive_body(sqs, cloud.resources.dead_letter_queue_url, "ghost.jpg"),
                            timeout=20, interval=0.3)
    assert dead is not None, f"not in the DLQ after {waited:.1f} s"
    assert int(dead["Attributes"]["ApproximateReceiveCount"]) >= 1


def test_s3_test_event_is_skipped(cloud):
    sqs = cloud.client("sqs")
    sqs.send_message(QueueUrl=cloud.resources.queue_url, MessageBody=json.dumps(
        {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": cloud.names.image_bucket}))
    drained, _ = wait_for(lambda: _queue_empty(sqs, cloud.resources.queue_url), timeout=10)
    assert drained
    assert _receive_body(sqs, cloud.resources.dead_letter_queue_url, "s3:TestEvent") is None


def _queue_empty(sqs, url) -> bool:
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return attrs["ApproximateNumberOfMessages"] == "0" and attrs["ApproximateNumberOfMessagesNotVisible"] == "0"


def _receive_body(sqs, url, needle):
    for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                       AttributeNames=["All"], VisibilityTimeout=0).get("Messages", []):
        if needle in message["Body"]:
            return message
    return None
