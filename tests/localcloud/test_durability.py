"""State that survives: stop and start, a hard kill of the storage process, a killed API worker."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest
import requests

from localcloud.cloud import LocalCloud
from screening import resources
from tests.localcloud.conftest import wait_for

pytestmark = pytest.mark.slow
IMAGE = "glaucoma/Im353_g_ACRIMA.jpg"


def predict(cloud, data: bytes) -> dict:
    response = requests.post(cloud.api_url + "/predict", data=data, timeout=30,
                             headers={"x-api-key": cloud.api_key, "Content-Type": "image/jpeg"})
    assert response.status_code == 200, response.text
    return response.json()


def stored(cloud, record_id: str) -> dict | None:
    response = requests.get(f"{cloud.api_url}/predictions/{record_id}", headers={"x-api-key": cloud.api_key},
                            timeout=30)
    return response.json() if response.status_code == 200 else None


def counters(cloud) -> dict:
    return requests.get(cloud.api_url + "/status", headers={"x-api-key": cloud.api_key}, timeout=30).json()["counts"]


def test_records_images_and_queue_messages_survive_a_restart_and_a_hard_kill(tmp_path, sample_dir):
    image = (sample_dir / IMAGE).read_bytes()
    state = tmp_path / "state"
    with LocalCloud(state_dir=state, api_workers=1) as cloud:
        ids = [predict(cloud, image)["id"] for _ in range(3)]
        s3 = cloud.client("s3")
        s3.put_object(Bucket=cloud.names.image_bucket, Key="training-data/glaucoma/a.jpg", Body=image)
        s3.put_object(Bucket=cloud.names.model_bucket, Key=f"{resources.CURRENT_MODEL_PREFIX}model.json",
                      Body=b'{"version": "v-test"}')
        sqs = cloud.client("sqs")
        sqs.send_message(QueueUrl=cloud.resources.dead_letter_queue_url, MessageBody='{"kept": 1}')
        before = counters(cloud)
        listing = requests.get(cloud.api_url + "/predictions?limit=3", headers={"x-api-key": cloud.api_key},
                               timeout=30).json()["items"]

    with LocalCloud(state_dir=state, api_workers=1) as cloud:
        assert cloud.restored["records"] == 3
        assert all(stored(cloud, i) for i in ids)
        assert counters(cloud) == before
        again = requests.get(cloud.api_url + "/predictions?limit=3", headers={"x-api-key": cloud.api_key},
                             timeout=30).json()["items"]
        assert [i["id"] for i in again] == [i["id"] for i in listing]
        s3 = cloud.client("s3")
        assert s3.get_object(Bucket=cloud.names.image_bucket, Key="training-data/glaucoma/a.jpg")["Body"].read() == image
        assert json.loads(s3.get_object(Bucket=cloud.names.model_bucket,
                                        Key=f"{resources.CURRENT_MODEL_PREFIX}model.json")["Body"].read()) == {
            "version": "v-test"}
        messages = cloud.client("sqs").receive_message(QueueUrl=cloud.resources.dead_letter_queue_url,
                                                       MaxNumberOfMessages=10).get("Messages", [])
        assert [m["Body"] for m in messages] == ['{"kept": 1}']
        # Acknowledged writes survive a kill -9 of the storage process itself.
        late = predict(cloud, image)["id"]
        key = "incoming/after-restart/x.jpg"
        etag = s3.put_object(Bucket=cloud.names.image_bucket, Key=key, Body=image)["ETag"]
        os.kill(cloud.processes["storage"].pid, signal.SIGKILL)
        cloud.processes["storage"].wait()

    with LocalCloud(state_dir=state, api_workers=1) as cloud:
        assert stored(cloud, late) is not None
        s3 = cloud.client("s3")
        assert s3.head_object(Bucket=cloud.names.image_bucket, Key=key)["ETag"] == etag
        # The S3 path picks up the uploaded image whether or not it was screened before the kill.
        from screening.records import s3_record_id

        record_id = s3_record_id(cloud.names.image_bucket, key, etag)
        item, _ = wait_for(lambda: stored(cloud, record_id), timeout=20)
        assert item is not None and item["label"] == "glaucoma"
        total = counters(cloud)
        assert sum(total.values()) == cloud_records(cloud)



def cloud_records(cloud) -> int:
    table = cloud.session().resource("dynamodb", endpoint_url=cloud.aws_endpoint).Table(cloud.names.results_table)
    return sum(1 for i in table.scan()["Items"] if i.get("record_type") == resources.RECORD_TYPE)


def test_kill_minus_9_of_an_api_worker_loses_and_duplicates_nothing(cloud, api, sample_dir, table):
    image = (sample_dir / IMAGE).read_bytes()
    workers = cloud.api_worker_pids()
    assert len(workers) == cloud.api_workers
    records_before = cloud_records(cloud)
    counts_before = sum(api.get("/status").json()["counts"].values())
    answered: list[str] = []
    failed: list[str] = []
    stop = threading.Event()

    def client():
        session = requests.Session()
        while not stop.is_set():
            try:
                response = session.post(cloud.api_url + "/predict", data=image, timeout=30,
                                        headers={"x-api-key": cloud.api_key, "Content-Type": "image/jpeg"})
                if response.status_code == 200:
                    answered.append(response.json()["id"])
                else:
                    failed.append(str(response.status_code))
            except requests.RequestException as exc:
                failed.append(type(exc).__name__)

    threads = [threading.Thread(target=client) for _ in range(3)]
    for thread in threads:
        thread.start()
    time.sleep(2)
    os.kill(workers[0], signal.SIGKILL)
    killed_at = len(answered)
    time.sleep(4)
    stop.set()
    for thread in threads:
        thread.join(timeout=60)

    assert len(answered) > killed_at + 5, "the service stopped answering after the kill"
    assert len(failed) <= 3, failed  # at most the request the killed worker held, per client
    replaced, _ = wait_for(lambda: (lambda p: len(p) == cloud.api_workers and workers[0] not in p)(
        cloud.api_worker_pids()), timeout=20)
    assert replaced, "no replacement worker started"
    assert all(api.get(f"/predictions/{i}").status_code == 200 for i in answered)
    new_records = cloud_records(cloud) - records_before
    assert len(answered) <= new_records <= len(answered) + len(failed)
    assert len(set(answered)) == len(answered)
    assert sum(api.get("/status").json()["counts"].values()) - counts_before == new_records


def test_a_torn_journal_line_is_skipped_and_a_snapshot_empties_the_journal(tmp_path):
    from localcloud.storage import JOURNAL, SNAPSHOT, StateStore

    store = StateStore(tmp_path)
    store.append([{"k": "ddb", "t": "t", "key": "{}", "item": {"id": {"S": "x"}, "record_type": {"S": "p"}}}])
    store.close()
    (tmp_path / JOURNAL).open("ab").write(b'{"k": "ddb", "t"')  # a torn line, as a hard kill leaves
    again = StateStore(tmp_path)
    assert again.load() == 1 and again.record_count("t") == 1
    again.snapshot()
    assert (tmp_path / SNAPSHOT).exists() and (tmp_path / JOURNAL).stat().st_size == 0
