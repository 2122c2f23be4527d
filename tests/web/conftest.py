"""The local cloud with the page, and Debian's headless Chromium driven by Playwright."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import requests

from localcloud.cloud import LocalCloud

ROOT = Path(__file__).resolve().parent.parent.parent
OUTPUT = Path(os.environ.get("TEST_OUTPUT_DIR", ROOT / "test-output")) / "web"
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def chromium_path() -> str:
    """Debian's chromium (`make browser` installs it); never a browser download."""
    for candidate in (os.environ.get("CHROMIUM"), *CHROMIUM_CANDIDATES, shutil.which("chromium")):
        if candidate and Path(candidate).is_file():
            return candidate
    pytest.fail("Chromium not found: run `make browser` (apt-get install chromium) or set CHROMIUM=/path")


@pytest.fixture(scope="session")
def web_cloud():
    """A local cloud whose functions emit their EMF metrics (LOCAL_METRICS=1), as in Lambda."""
    saved = {k: os.environ.get(k) for k in ("LOCAL_METRICS", "POWERTOOLS_METRICS_DISABLED")}
    os.environ["LOCAL_METRICS"] = "1"
    try:
        with LocalCloud() as cloud:
            yield cloud
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


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
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        yield launched
        launched.close()
