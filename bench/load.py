"""Locust, headless, against a local cloud it starts and always stops (127.0.0.1 only).

    python bench/load.py [--users 100] [--seconds 60] [--api-workers N] [--wait 0.05,0.2]

`--wait` overrides the locustfile's pacing (1-2 s between a user's requests); 0.05,0.2 is
the stress profile, where 100 users offer more than two cores serve.

The cloud gets a fresh state folder of its own (removed afterwards); locust runs
as a child process; whatever happens (Ctrl-C included), both are stopped. Prints
locust's summary, then one line: requests/s, POST /predict p50/p95/p99 and failures.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--api-workers", type=int, default=0, help="default: one per core")
    parser.add_argument("--wait", default="", help="MIN,MAX seconds each user waits between requests "
                        "(default: the locustfile's)")
    args = parser.parse_args()

    from localcloud.cloud import LocalCloud

    pacing = f"{args.wait} s" if args.wait else "as the locustfile paces them"
    with tempfile.TemporaryDirectory(prefix="localcloud-load-") as state:
        with LocalCloud(state_dir=Path(state), api_workers=args.api_workers) as cloud:
            print(f"local cloud: {cloud.api_url}, {cloud.api_workers} API workers; "
                  f"locust: {args.users} users for {args.seconds} s, waiting {pacing}", flush=True)
            prefix = Path(state) / "locust"
            command = [sys.executable, "-m", "locust", "-f", str(ROOT / "locustfile.py"),
                       "--headless", "-u", str(args.users), "-r", str(args.users), "-t", f"{args.seconds}s",
                       "--host", cloud.api_url, "--only-summary", "--csv", str(prefix)]
            env = {**os.environ, "LOCUST_API_KEY": cloud.api_key}
            if args.wait:
                env["LOCUST_WAIT"] = args.wait
            process = subprocess.Popen(command, env=env, cwd=ROOT)
            try:
                code = process.wait(timeout=args.seconds + 120)
            finally:
                if process.poll() is None:
                    process.terminate()
                    process.wait(timeout=10)
            summary(prefix)
    return code


def summary(prefix: Path) -> None:
    path = prefix.with_name(prefix.name + "_stats.csv")
    if not path.exists():
        return
    rows = {row["Name"]: row for row in csv.DictReader(path.open())}
    total, predict = rows.get("Aggregated"), rows.get("POST /predict")
    if not total or not predict:
        return
    failures = int(total["Failure Count"])
    requests = int(total["Request Count"])
    print(f"RESULT requests/s {float(total['Requests/s']):.1f}; POST /predict p50 {predict['50%']} ms, "
          f"p95 {predict['95%']} ms, p99 {predict['99%']} ms; failures {failures}/{requests} "
          f"({100 * failures / max(requests, 1):.2f} %)")


if __name__ == "__main__":
    sys.exit(main())
