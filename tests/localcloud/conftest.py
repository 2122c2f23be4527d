"""One local cloud (its storage, API and consumer processes, over real HTTP) for the module's tests."""

from __future__ import annotations

import time

import pytest
import requests

from localcloud.cloud import LocalCloud

CLINIC_KEY = "clinic-a-test-key"


@pytest.fixture(scope="session")
def cloud():
    with LocalCloud(api_workers=2, api_keys={"clinic-a": CLINIC_KEY}) as running:
        yield running


@pytest.fixture(scope="session")
def api(cloud):
    session = requests.Session()
    session.headers["x-api-key"] = cloud.api_key

    class Api:
        url = cloud.api_url

        def post(self, path, **kwargs):
            return session.post(cloud.api_url + path, timeout=30, **kwargs)

        def get(self, path, **kwargs):
            return session.get(cloud.api_url + path, timeout=30, **kwargs)

    return Api()


@pytest.fixture(scope="session")
def table(cloud):
    return cloud.session().resource("dynamodb", endpoint_url=cloud.aws_endpoint).Table(cloud.names.results_table)


def wait_for(fetch, timeout: float = 10.0, interval: float = 0.05):
    """Poll `fetch` until it returns something truthy; (value, seconds waited)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        value = fetch()
        if value:
            return value, time.monotonic() - started
        time.sleep(interval)
    return None, time.monotonic() - started
