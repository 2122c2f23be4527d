"""Load test of the API (bounded, loopback only by default).

    make load     # starts the local cloud, runs 4 users for 30 s, prints the stats, stops

or against a running local cloud:

    locust -f locustfile.py --headless -u 4 -r 4 -t 30s --host http://127.0.0.1:8080

Against a deployed stage, pass its URL and key explicitly (LOCUST_API_KEY) and
ALLOW_REMOTE_TARGET=1; without that flag any host but 127.0.0.1 is refused.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from urllib.parse import urlsplit

from locust import FastHttpUser, between, events, task

SAMPLES = sorted((Path(__file__).resolve().parent / "samples" / "acrima").glob("*/*.jpg"))
IMAGES = [(p.parent.name, p.read_bytes()) for p in SAMPLES]


@events.test_start.add_listener
def refuse_remote_targets(environment, **_):
    host = urlsplit(environment.host or "").hostname
    if host not in ("127.0.0.1", "localhost", "::1") and os.environ.get("ALLOW_REMOTE_TARGET") != "1":
        raise SystemExit(f"refusing to load-test {host}: set ALLOW_REMOTE_TARGET=1 for a deployed stage")


class Clinic(FastHttpUser):
    """FastHttpUser (geventhttpclient): locust shares the 2 cores with the service, and with this
    client it took 9 % of one core at ~50 requests/s instead of 14 % (bench/load.py, 100 users)."""

    host = "http://127.0.0.1:8080"
    # Seconds each user waits between requests. The default, 1-2 s, is the pacing the targets
    # imply: the replaced system quotes 100 users at 51 requests/s (about 2 s a cycle), and
    # 100 users at >= 60 requests/s with p95 <= 0.5 s leaves 1.2-1.7 s of waiting (Little's law).
    # LOCUST_WAIT="0.05,0.2" is the stress profile: users then offer more than the cores serve.
    wait_time = between(*(float(x) for x in os.environ.get("LOCUST_WAIT", "1,2").split(",")))
    default_headers = {"x-api-key": os.environ.get("LOCUST_API_KEY", "local-dev-key")}

    @task(8)
    def predict(self) -> None:
        truth, image = random.choice(IMAGES)
        with self.client.post("/predict", data=image, headers={"Content-Type": "image/jpeg"},
                              name="POST /predict", catch_response=True) as response:
            if response.status_code != 200 or "label" not in response.json():
                response.failure(f"HTTP {response.status_code}")

    @task(1)
    def status(self) -> None:
        self.client.get("/status", name="GET /status")

    @task(1)
    def recent(self) -> None:
        self.client.get("/predictions?limit=10", name="GET /predictions")
