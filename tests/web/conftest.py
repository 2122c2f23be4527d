"""The local cloud with the page (its own process), and Debian's headless Chromium driven by Playwright."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
import requests

from localcloud.cloud import DEFAULT_API_KEY, REGION, free_port
from screening import resources
from screening.resources import ResourceNames

ROOT = Path(__file__).resolve().parent.parent.parent
OUTPUT = Path(os.environ.get("TEST_OUTPUT_DIR", ROOT / "test-output")) / "web"
SERVE_SECONDS = 600  # a bound: the process stops by itself even if the test run is killed
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def chromium_path() -> str:
    """Debian's chromium (`make browser` installs it); never a browser download."""
    for candidate in (os.environ.get("CHROMIUM"), *CHROMIUM_CANDIDATES, shutil.which("chromium")):
        if candidate and Path(candidate).is_file():
            return candidate
    pytest.fail("Chromium not found: run `make browser` (apt-get install chromium) or set CHROMIUM=/path")


class RunningCloud:
    """`python -m localcloud` in its own process: moto keeps its state per process, so the
    page's cloud cannot share a process with the one tests/localcloud starts."""

    def __init__(self, api_port: int, aws_port: int, api_key: str = DEFAULT_API_KEY) -> None:
        self.api_port, self.aws_port, self.api_key = api_port, aws_port, api_key
        self.api_url = f"http://127.0.0.1:{api_port}"
        self.aws_endpoint = f"http://127.0.0.1:{aws_port}"
        self.names = ResourceNames.for_stage(resources.LOCAL_STAGE)

    def client(self, service: str):
        return boto3.client(service, endpoint_url=self.aws_endpoint, region_name=REGION,
                            aws_access_key_id="local", aws_secret_access_key="local")


@pytest.fixture(scope="session")
def web_cloud(output_dir):
    """The local cloud with its functions emitting EMF metrics (LOCAL_METRICS=1), as in Lambda."""
    cloud = RunningCloud(free_port(), free_port())
    env = {**os.environ, "LOCAL_METRICS": "1", "PYTHONPATH": f"{ROOT / 'functions'}{os.pathsep}{ROOT}",
           "LOCAL_METRICS_FILE": str(output_dir / "emf.jsonl")}
    (output_dir / "emf.jsonl").unlink(missing_ok=True)
    with open(output_dir / "localcloud.log", "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "localcloud", "--api-port", str(cloud.api_port),
                                    "--aws-port", str(cloud.aws_port), "--serve-seconds", str(SERVE_SECONDS),
                                    "--state-dir", str(output_dir / "cloud-state"), "--fresh"],
                                   cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    pytest.fail(f"the local cloud exited ({process.returncode}); see {output_dir / 'localcloud.log'}")
                try:
                    if requests.get(cloud.api_url + "/", timeout=2).status_code == 200:
                        break
                except requests.ConnectionError:
                    pass
                time.sleep(0.3)
            else:
                pytest.fail("the local cloud did not answer within 90 s")
            yield cloud
        finally:
            process.send_signal(signal.SIGTERM)  # it stops cleanly on SIGTERM
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="session")
def api_session(web_cloud) -> requests.Session:
    session = requests.Session()
    session.headers["x-api-key"] = web_cloud.api_key
    return session


@pytest.fixture(scope="session")
def output_dir() -> Path:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    return OUTPUT


@pytest.fixture(scope="session")
def browser(playwright_driver):
    launched = playwright_driver.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
    yield launched
    launched.close()
