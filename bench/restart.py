"""Stop + start of the local cloud holding N records: seconds until it answers, every record there.

    python bench/restart.py [--records 20000] [--objects 8000]

Screens one real image, copies its stored item N times (new ids, one second apart)
into the state folder's journal as the storage process itself writes them, then
starts the cloud on that folder and times it (target < 5 s for 20,000), checks
the count, reads a record back and lists the newest page. With --objects, that many
distinct images under incoming/ too (the image with a counter appended), as the S3
path leaves them, and one is read back.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--objects", type=int, default=0, help="images in the bucket as well")
    args = parser.parse_args()

    import requests

    from localcloud.cloud import LocalCloud
    from localcloud.storage import StateStore, s3_entry

    image = (ROOT / "samples/acrima/glaucoma/Im353_g_ACRIMA.jpg").read_bytes()
    with tempfile.TemporaryDirectory(prefix="localcloud-restart-") as state_dir:
        state = Path(state_dir)
        with LocalCloud(state_dir=state, api_workers=1) as cloud:
            headers = {"x-api-key": cloud.api_key}
            record_id = requests.post(f"{cloud.api_url}/predict", data=image, timeout=30,
                                      headers={**headers, "Content-Type": "image/jpeg"}).json()["id"]
            item = cloud.client("dynamodb").get_item(TableName=cloud.names.results_table,
                                                     Key={"id": {"S": record_id}})["Item"]
            table = cloud.names.results_table
            bucket = cloud.names.image_bucket
        store = StateStore(state, sync=False)
        store.load()
        start = datetime.now(timezone.utc) - timedelta(seconds=args.records)
        entries = []
        for i in range(args.records):
            copy = json.loads(json.dumps(item))
            copy["id"] = {"S": uuid.uuid4().hex}
            copy["created_at"] = {"S": (start + timedelta(seconds=i)).isoformat(timespec="milliseconds")}
            entries.append({"k": "ddb", "t": table, "key": json.dumps({"id": copy["id"]}, sort_keys=True,
                                                                        separators=(",", ":")), "item": copy})
        entries += [s3_entry(store, bucket, f"incoming/restart/{i}.jpg", image + str(i).encode(),
                             {"Content-Type": "image/jpeg"}) for i in range(args.objects)]
        store.append(entries)
        store.snapshot()
        store.close()
        sample_id = entries[len(entries) // 2]["item"]["id"]["S"]

        started = time.monotonic()
        with LocalCloud(state_dir=state) as cloud:
            up = time.monotonic() - started
            headers = {"x-api-key": cloud.api_key}
            found = requests.get(f"{cloud.api_url}/predictions/{sample_id}", headers=headers, timeout=30)
            objects = ""
            if args.objects:
                last = args.objects - 1
                body = cloud.client("s3").get_object(Bucket=bucket, Key=f"incoming/restart/{last}.jpg")["Body"].read()
                objects = (f" and {cloud.restored['objects']} objects (expected {args.objects}; "
                           f"one read back: {'same bytes' if body == image + str(last).encode() else 'DIFFERENT'})")
            timings = []
            for _ in range(20):
                t = time.perf_counter()
                page = requests.get(f"{cloud.api_url}/predictions?limit=20", headers=headers, timeout=30)
                timings.append((time.perf_counter() - t) * 1000)
            newest = page.json()["items"][0]["created_at"]
            print(f"RESULT restart with {cloud.restored['records']} records (expected {args.records + 1}){objects}: "
                  f"up in {up:.1f} s (target < 5 s; {', '.join(f'{k} at {v:.1f} s' for k, v in cloud.timings.items())}); "
                  f"a record read back: HTTP {found.status_code}; GET /predictions?limit=20 median "
                  f"{statistics.median(timings):.1f} ms, newest {newest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
