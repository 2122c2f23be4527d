"""Concurrent traffic through both paths: exact counters, and memory that stays flat (a bounded soak)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from screening.records import s3_record_id
from tests.localcloud.conftest import wait_for

pytestmark = pytest.mark.slow
SOAK_PREDICTIONS = 1000
SOAK_SECONDS = 60


def status(api) -> dict:
    return api.get("/status").json()


def test_concurrent_api_and_s3_traffic_give_exact_label_counters(cloud, api, sample_files, table):
    images = [(label, p.read_bytes()) for label, paths in sample_files.items() for p in paths]
    before = status(api)["counts"]
    s3 = cloud.client("s3")
    uploaded: list[tuple[str, str]] = []

    def upload(i: int) -> None:
        key = f"incoming/counters/{i}.jpg"
        etag = s3.put_object(Bucket=cloud.names.image_bucket, Key=key, Body=images[i % len(images)][1])["ETag"]
        uploaded.append((key, etag))

    def post(i: int) -> str:
        session = requests.Session()
        response = session.post(cloud.api_url + "/predict", data=images[i % len(images)][1], timeout=60,
                                headers={"x-api-key": cloud.api_key, "Content-Type": "image/jpeg"})
        assert response.status_code == 200, response.text
        return response.json()["label"]

    with ThreadPoolExecutor(8) as pool:
        s3_jobs = [pool.submit(upload, i) for i in range(40)]
        api_labels = list(pool.map(post, range(40)))
        for job in s3_jobs:
            job.result()
    ids = [s3_record_id(cloud.names.image_bucket, key, etag) for key, etag in uploaded]

    def s3_labels():
        items = [table.get_item(Key={"id": i}, ConsistentRead=True).get("Item") for i in ids]
        return [i["label"] for i in items] if all(items) else None

    labels, waited = wait_for(s3_labels, timeout=60, interval=0.5)
    assert labels is not None, f"S3 records missing after {waited:.0f} s"
    after = status(api)["counts"]
    for label in ("normal", "glaucoma"):
        expected = api_labels.count(label) + labels.count(label)
        assert after[label] - before[label] == expected, (label, before, after)
    assert after["rejected"] == before["rejected"]


def test_bounded_soak_memory_per_record_stays_small(cloud, sample_files):
    """A bounded soak (at most SOAK_PREDICTIONS in SOAK_SECONDS), one in five through S3: the local
    cloud's memory grows by little per record (the unbounded growth was megabytes a record)."""
    images = [p.read_bytes() for paths in sample_files.values() for p in paths]
    s3 = cloud.client("s3")
    headers = {"x-api-key": cloud.api_key, "Content-Type": "image/jpeg"}
    deadline = time.monotonic() + SOAK_SECONDS
    numbers = iter(range(10**9))
    lock = threading.Lock()

    def drive(limit: int) -> int:
        done = [0]

        def worker(_: int) -> None:
            session = requests.Session()
            while time.monotonic() < deadline:
                with lock:
                    if done[0] >= limit:
                        return
                    done[0] += 1
                    i = next(numbers)
                if i % 5 == 0:
                    s3.put_object(Bucket=cloud.names.image_bucket, Key=f"incoming/soak/{i}.jpg",
                                  Body=images[i % len(images)])
                else:
                    session.post(cloud.api_url + "/predict", data=images[i % len(images)], headers=headers,
                                 timeout=60).raise_for_status()

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(worker, range(4)))
        wait_for(lambda: status_queue_empty(cloud), timeout=60, interval=0.5)
        return done[0]

    drive(SOAK_PREDICTIONS // 5)  # warm up: caches, allocator arenas, connection pools
    rss_warm = cloud.total_rss_bytes()
    done = drive(SOAK_PREDICTIONS)
    rss_end = cloud.total_rss_bytes()
    per_record = (rss_end - rss_warm) / max(done, 1)
    print(f"soak: {done} predictions, RSS {rss_warm / 2**20:.0f} -> {rss_end / 2**20:.0f} MiB, "
          f"{per_record / 1024:.1f} KiB a record")
    assert done >= 200, f"only {done} predictions in {SOAK_SECONDS} s"
    assert per_record < 64 * 1024, f"{per_record / 1024:.0f} KiB a record"
    assert rss_end < 1.5 * 2**30


def status_queue_empty(cloud) -> bool:
    sqs = cloud.client("sqs")
    attrs = sqs.get_queue_attributes(QueueUrl=cloud.resources.queue_url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return attrs["ApproximateNumberOfMessages"] == "0" and attrs["ApproximateNumberOfMessagesNotVisible"] == "0"


def test_the_locustfile_runs_headless_against_the_local_cloud_without_failures(cloud, tmp_path):
    """`make load`'s user, for a few seconds: every request answered, none failed (a broken
    locustfile would otherwise only show when someone runs a load test)."""
    import csv
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    prefix = tmp_path / "locust"
    result = subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(root / "locustfile.py"), "--headless", "-u", "2", "-r", "2",
         "-t", "4s", "--host", cloud.api_url, "--only-summary", "--csv", str(prefix)],
        env={**os.environ, "LOCUST_API_KEY": cloud.api_key, "LOCUST_WAIT": "0.05,0.2"},  # the stress pacing: more requests
        cwd=root, capture_output=True, text=True, timeout=90)
    rows = {row["Name"]: row for row in csv.DictReader((tmp_path / "locust_stats.csv").open())}
    assert result.returncode == 0, result.stderr[-2000:]
    assert int(rows["POST /predict"]["Request Count"]) > 0
    assert int(rows["Aggregated"]["Failure Count"]) == 0, result.stderr[-2000:]
