"""Soak: N predictions through the API and the S3 path together, on a fresh local cloud.

    python bench/soak.py [--predictions 20000] [--s3-share 0.2] [--clients 4]

Prints, every --report-every predictions, the total RSS of all the local cloud's
processes (storage, API master and workers, consumer) and the POST /predict median
of about the last --report-every (a trend, not noise, shows as a climb); at the end
the POST /predict median over the first and the last 1,000 (and their ratio: target
<= 1.5x), the final RSS (target < 1.5 GB), and a restart with every record back
(target < 5 s).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = sorted((ROOT / "samples" / "acrima").glob("*/*.jpg"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--predictions", type=int, default=20_000)
    parser.add_argument("--s3-share", type=float, default=0.2, help="share of the images sent through S3")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--window", type=int, default=1000, help="first/last window for the medians")
    parser.add_argument("--report-every", type=int, default=2000)
    args = parser.parse_args()

    import requests

    from localcloud.cloud import LocalCloud

    images = [p.read_bytes() for p in SAMPLES]
    every_s3 = max(1, round(1 / args.s3_share)) if args.s3_share > 0 else 0
    api_per_report = max(1, round(args.report_every * (1 - 1 / every_s3 if every_s3 else 1)))
    latencies: list[tuple[int, float]] = []
    lock = threading.Lock()
    counter = iter(range(args.predictions))
    with tempfile.TemporaryDirectory(prefix="localcloud-soak-") as state_dir:
        state = Path(state_dir)
        with LocalCloud(state_dir=state) as cloud:
            s3 = cloud.client("s3")
            headers = {"x-api-key": cloud.api_key, "Content-Type": "image/jpeg"}
            print(f"soak: {args.predictions} predictions, 1 in {every_s3 or 'none'} through S3, "
                  f"{args.clients} clients, {cloud.api_workers} API workers; RSS at start "
                  f"{cloud.total_rss_bytes() / 2**20:.0f} MiB", flush=True)
            started = time.monotonic()

            def client(_: int) -> None:
                session = requests.Session()
                for i in counter:
                    data = images[i % len(images)]
                    if every_s3 and i % every_s3 == 0:
                        s3.put_object(Bucket=cloud.names.image_bucket, Key=f"incoming/soak/{i}.jpg", Body=data)
                    else:
                        t = time.perf_counter()
                        session.post(f"{cloud.api_url}/predict", data=data, headers=headers,
                                     timeout=60).raise_for_status()
                        with lock:
                            latencies.append((i, (time.perf_counter() - t) * 1000))
                    if (i + 1) % args.report_every == 0:
                        with lock:  # the API predictions of about the last report_every sent
                            recent = [ms for _, ms in latencies[-api_per_report:]]
                        print(f"  {i + 1:6d} sent, {time.monotonic() - started:6.0f} s, "
                              f"RSS {cloud.total_rss_bytes() / 2**20:6.0f} MiB, "
                              f"POST /predict median {statistics.median(recent or [0]):5.1f} ms", flush=True)

            with ThreadPoolExecutor(args.clients) as pool:
                list(pool.map(client, range(args.clients)))
            records = wait_for_records(cloud, args.predictions, timeout=600)
            elapsed = time.monotonic() - started
            rss = cloud.total_rss_bytes()
        latencies.sort()
        window = min(args.window, len(latencies) // 2) or 1
        first = statistics.median(ms for _, ms in latencies[:window])
        last = statistics.median(ms for _, ms in latencies[-window:])
        print(f"RESULT {records} records in {elapsed:.0f} s; POST /predict median first {window} {first:.1f} ms, "
              f"last {window} {last:.1f} ms ({last / first:.2f}x; target <= 1.5x); "
              f"RSS of the local cloud {rss / 2**20:.0f} MiB (target < 1536 MiB)")
        started = time.monotonic()
        with LocalCloud(state_dir=state) as cloud:
            up = time.monotonic() - started
            print(f"RESULT restart with {cloud.restored['records']} records: up in {up:.1f} s "
                  f"(target < 5 s; {', '.join(f'{k} at {v:.1f} s' for k, v in cloud.timings.items())})")
    return 0


def wait_for_records(cloud, expected: int, timeout: float) -> int:
    """Until the S3 path has caught up: the counters hold every prediction."""
    import requests

    deadline = time.monotonic() + timeout
    total = 0
    while time.monotonic() < deadline:
        counts = requests.get(f"{cloud.api_url}/status", headers={"x-api-key": cloud.api_key},
                              timeout=60).json()["counts"]
        total = sum(counts.values())
        if total >= expected:
            break
        time.sleep(1)
    return total


if __name__ == "__main__":
    sys.exit(main())
