"""CPU time one request costs, summed over every process of the local cloud (127.0.0.1 only).

    python bench/cpu_per_request.py [--requests 300] [--route predict | /status | "/predictions?limit=10"]
    python bench/cpu_per_request.py --idle 10     # what an idle cloud costs: % of a core per process

Starts a local cloud (one API worker, fresh state folder, always stopped), warms it up, then
sends the requests one after another over one keep-alive connection and prints, from each
process's /proc CPU counters, the milliseconds of CPU per request: API worker, storage,
queue consumer, and the client (this process). What the locust throughput is bounded by:
two cores / the sum.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def cpu_seconds(pid: int) -> float:
    """user + system CPU of a process so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def role(pid: int) -> str:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except FileNotFoundError:
        return "gone"
    for module, name in (("localcloud.storage", "storage"), ("localcloud.gateway", "API"),
                         ("localcloud.sqs_poller", "queue consumer")):
        if module in command:
            return name
    return "other"


def cpu_by_role(pids: list[int], before: dict[int, float]) -> dict[str, float]:
    """CPU seconds each role's processes spent since `before` (their counters then)."""
    spent: dict[str, float] = {}
    for pid in pids:
        spent[role(pid)] = spent.get(role(pid), 0.0) + cpu_seconds(pid) - before[pid]
    return spent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--route", default="predict", help='"predict" (POST /predict, the 12 samples in turn) or a GET path')
    parser.add_argument("--idle", type=float, default=0,
                        help="instead: seconds to watch an idle cloud (after 5 s to settle)")
    args = parser.parse_args()

    import requests

    from localcloud.cloud import LocalCloud

    images = [p.read_bytes() for p in sorted((ROOT / "samples" / "acrima").glob("*/*.jpg"))]
    with tempfile.TemporaryDirectory(prefix="localcloud-cpu-") as state:
        with LocalCloud(state_dir=Path(state), api_workers=1) as cloud:
            session = requests.Session()
            session.headers["x-api-key"] = cloud.api_key

            def send(i: int) -> float:
                started = time.perf_counter()
                if args.route == "predict":
                    response = session.post(f"{cloud.api_url}/predict", data=images[i % len(images)],
                                            headers={"Content-Type": "image/jpeg"})
                else:
                    response = session.get(cloud.api_url + args.route)
                response.raise_for_status()
                return time.perf_counter() - started

            for i in range(20):
                send(i)
            pids = cloud.all_pids()
            if args.idle:
                time.sleep(5)
                before = {pid: cpu_seconds(pid) for pid in pids}
                time.sleep(args.idle)
                print(f"RESULT idle for {args.idle:g} s: " + ", ".join(
                    f"{name} {100 * seconds / args.idle:.1f} %"
                    for name, seconds in sorted(cpu_by_role(pids, before).items())) + " of a core")
                return 0
            before = {pid: cpu_seconds(pid) for pid in pids}
            client_before = time.process_time()
            latencies = [send(i) for i in range(args.requests)]
            client = (time.process_time() - client_before) * 1000 / args.requests
            by_role = {name: seconds * 1000 / args.requests for name, seconds in cpu_by_role(pids, before).items()}
    name = "POST /predict" if args.route == "predict" else f"GET {args.route}"
    print(f"{name}, {args.requests} requests one after another: median {statistics.median(latencies) * 1000:.1f} ms")
    for key in ("API", "storage", "queue consumer", "other"):
        if key in by_role:
            print(f"  {key:15s} {by_role[key]:6.1f} ms CPU a request")
    print(f"  {'client':15s} {client:6.1f} ms CPU a request")
    total = sum(by_role.values())
    print(f"RESULT {name}: {total:.1f} ms CPU a request in the local cloud (+{client:.1f} ms client); "
          f"two cores serve at most {2000 / (total + client):.0f} a second")
    return 0


if __name__ == "__main__":
    sys.exit(main())
