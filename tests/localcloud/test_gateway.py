"""The local API Gateway's own answers, over raw sockets where a client library would refuse."""

from __future__ import annotations

import json
import socket
import time

import pytest
import requests

from localcloud.api_gateway import parse_api_keys
from tests.localcloud.conftest import CLINIC_KEY


def raw_request(cloud, data: bytes, timeout: float = 10.0) -> tuple[int, dict, bytes, float]:
    """Send bytes as they are; (status, headers, body, seconds until the answer)."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", cloud.api_port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body, time.monotonic() - started


def assert_json_error(body: bytes, error: str) -> dict:
    payload = json.loads(body)
    assert payload["error"] == error and payload["message"], payload
    return payload


@pytest.mark.parametrize("headers", [{}, {"x-api-key": "wrong"}], ids=["missing key", "wrong key"])
def test_a_request_without_a_valid_key_is_a_json_403(cloud, headers):
    response = requests.get(cloud.api_url + "/status", headers=headers, timeout=10)
    assert response.status_code == 403
    assert response.json() == {"error": "forbidden", "message": "Forbidden"}


def test_a_clinic_key_is_accepted(cloud):
    response = requests.get(cloud.api_url + "/status", headers={"x-api-key": CLINIC_KEY}, timeout=10)
    assert response.status_code == 200


def test_unknown_route_is_a_json_404(api):
    response = api.get("/no/such/route")
    assert response.status_code == 404 and response.json()["error"] == "not_found"


@pytest.mark.parametrize("method,path,allow", [
    ("DELETE", "/predict", "OPTIONS, POST"),
    ("GET", "/predict", "OPTIONS, POST"),
    ("PUT", "/status", "GET, OPTIONS"),
    ("TRACE", "/status", "GET, OPTIONS"),
    ("POST", "/predictions/abc", "GET, OPTIONS"),
])
def test_a_wrong_method_on_a_known_route_is_405_with_allow(cloud, method, path, allow):
    response = requests.request(method, cloud.api_url + path, headers={"x-api-key": cloud.api_key}, timeout=10)
    assert response.status_code == 405
    assert response.headers["Allow"] == allow
    assert response.json()["error"] == "method_not_allowed"


def test_head_is_405_without_a_body(cloud):
    response = requests.head(cloud.api_url + "/status", headers={"x-api-key": cloud.api_key}, timeout=10)
    assert response.status_code == 405 and response.headers["Allow"] == "GET, OPTIONS"
    assert response.headers["Content-Type"] == "application/json" and response.content == b""


def test_negative_content_length_is_a_json_400(cloud):
    status, headers, body, _ = raw_request(cloud, (
        f"POST /predict HTTP/1.1\r\nHost: x\r\nx-api-key: {cloud.api_key}\r\n"
        "Content-Type: image/jpeg\r\nContent-Length: -1\r\n\r\n").encode())
    assert status == 400 and headers["content-type"] == "application/json"
    assert_json_error(body, "invalid_content_length")


def test_a_body_shorter_than_its_content_length_is_400_not_a_hang(cloud):
    status, _, body, seconds = raw_request(cloud, (
        f"POST /predict HTTP/1.1\r\nHost: x\r\nx-api-key: {cloud.api_key}\r\n"
        "Content-Type: image/jpeg\r\nContent-Length: 1000\r\n\r\nonly a few bytes").encode())
    assert status == 400 and seconds < 8
    assert_json_error(body, "incomplete_body")


def test_oversize_headers_are_a_json_431(cloud):
    status, headers, body, _ = raw_request(cloud, (
        f"GET /status HTTP/1.1\r\nHost: x\r\nx-api-key: {cloud.api_key}\r\n"
        f"X-Padding: {'a' * 20000}\r\n\r\n").encode())
    assert status == 431 and headers["content-type"] == "application/json"
    assert_json_error(body, "headers_too_large")


def test_a_body_over_the_gateway_limit_is_a_json_413_before_it_is_read(cloud):
    status, _, body, _ = raw_request(cloud, (
        f"POST /predict HTTP/1.1\r\nHost: x\r\nx-api-key: {cloud.api_key}\r\n"
        f"Content-Type: image/jpeg\r\nContent-Length: {11 * 1024 * 1024}\r\n\r\n").encode())
    assert status == 413
    assert_json_error(body, "payload_too_large")


def test_the_api_answers_while_one_worker_is_held_by_a_slow_client(cloud, api):
    with socket.create_connection(("127.0.0.1", cloud.api_port)) as slow:
        slow.sendall(f"POST /predict HTTP/1.1\r\nHost: x\r\nx-api-key: {cloud.api_key}\r\n"
                     "Content-Length: 50\r\n\r\n".encode())
        started = time.monotonic()
        assert api.get("/status").status_code == 200
        assert time.monotonic() - started < 5


def test_api_keys_are_parsed_per_clinic():
    assert parse_api_keys("admin=k0, clinic-a=k1,clinic-b=k2") == {"k0": "admin", "k1": "clinic-a", "k2": "clinic-b"}
    with pytest.raises(ValueError):
        parse_api_keys("clinic-a=")


def test_the_documentation_routes_need_no_key_and_the_rest_do(cloud):
    """Key-less routes come from the OpenAPI document (`security: []`), as on API Gateway."""
    assert requests.get(cloud.api_url + "/openapi.json", timeout=10).status_code == 200
    assert requests.get(cloud.api_url + "/docs", timeout=10).status_code == 200
    response = requests.get(cloud.api_url + "/status", timeout=10)
    assert response.status_code == 403 and response.json()["error"] == "forbidden"


def test_public_paths_need_no_key_and_answer_json_when_absent(cloud):
    response = requests.get(cloud.api_url + "/web/no-such-file.css", timeout=10)
    assert response.status_code == 404 and response.json()["error"] == "not_found"
