"""The bad-input campaign as a table, over real HTTP against the local cloud, and through the S3 path.

Every kind of bad input gets its expected status and JSON `error` code; the server stays up and
never answers 5xx. Through S3 the same image kinds each end in exactly one record (or one
dead-letter message) and never take a good image with them.
"""

from __future__ import annotations

import base64
import io
import json
import socket
import struct
import subprocess
import sys
import textwrap
import zlib
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import quote

import pytest
from PIL import Image

from screening import resources
from screening.records import s3_record_id
from tests.localcloud.conftest import wait_for

GOOD = "normal/Im024_ACRIMA.jpg"


# ---- bad images ------------------------------------------------------------------------------

def encoded(image: Image.Image, fmt: str, **kwargs) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **kwargs)
    return out.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims a size its tiny data does not have."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 10))
            + chunk(b"IEND", b""))


def bmp_claiming(width: int, height: int) -> bytes:
    return (b"BM" + struct.pack("<IHHI", 0, 0, 0, 54)
            + struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 0, 0, 0, 0))


def good(d) -> bytes:
    return (d / GOOD).read_bytes()


def truncated_tiff() -> bytes:
    data = encoded(Image.new("RGB", (300, 300), (200, 10, 10)), "TIFF")
    return data[: len(data) // 3]


def animated_gif() -> bytes:
    return encoded(Image.new("P", (64, 64)), "GIF", save_all=True, append_images=[Image.new("P", (64, 64), 1)])


def extreme_aspect_png() -> bytes:
    return encoded(Image.new("L", (32, 1_250_000), 90), "PNG")


# (name, bytes builder, expected HTTP status, expected error / rejection reason)
BAD_IMAGES: list[tuple[str, Callable, int, str]] = [
    ("empty", lambda d: b"", 400, "empty"),
    ("text", lambda d: b"hello, this is not an image", 400, "not_an_image"),
    ("truncated jpeg", lambda d: good(d)[:5000], 400, "truncated"),
    ("jpeg soi only", lambda d: b"\xff\xd8\xff", 400, "not_an_image"),
    ("gif", lambda d: encoded(Image.open(d / GOOD), "GIF"), 415, "unsupported_format"),
    ("animated gif", lambda d: animated_gif(), 415, "unsupported_format"),
    ("ico", lambda d: encoded(Image.new("RGB", (64, 64)), "ICO"), 415, "unsupported_format"),
    ("pdf", lambda d: b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF", 400, "not_an_image"),
    ("svg", lambda d: b'<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100"/>', 400,
     "not_an_image"),
    ("base64 text of a jpeg", lambda d: base64.b64encode(good(d)[:3000]), 400, "not_an_image"),
    ("png bomb 9000x9000", lambda d: encoded(Image.new("L", (9000, 9000)), "PNG"), 413, "too_many_pixels"),
    ("png header claims 65535x65535", lambda d: png_claiming(65535, 65535), 413, "too_many_pixels"),
    ("png header claims width 0", lambda d: png_claiming(0, 100), 400, "not_an_image"),
    ("bmp header claims 40000x40000", lambda d: bmp_claiming(40000, 40000), 413, "too_many_pixels"),
    ("tiny 8x8", lambda d: encoded(Image.new("RGB", (8, 8)), "PNG"), 400, "too_small"),
    ("truncated webp", lambda d: encoded(Image.new("RGB", (300, 300), (200, 10, 10)), "WEBP")[:60], 400,
     "not_an_image"),
    ("truncated tiff", lambda d: truncated_tiff(), 400, "truncated"),
    # Owned by the quality gate (issue 12, web-page engineer): blank frames are rejected, not labelled.
    # An all-black frame has no content box: preprocessing refuses it (blank_image) before the gate.
    ("all-black frame", lambda d: encoded(Image.new("RGB", (512, 512)), "JPEG"), 400, "blank_image"),
    ("all-white frame", lambda d: encoded(Image.new("RGB", (512, 512), (255, 255, 255)), "JPEG"), 400,
     "blank_frame"),
]
QUALITY_GATE_KINDS = {"all-black frame", "all-white frame"}
# Owned by the preprocessing (model engineer): memory bounded whatever the aspect ratio.
EXTREME_ASPECT = ("32x1,250,000 png", lambda d: extreme_aspect_png())

PROBE = textwrap.dedent("""
    import resource, sys
    resource.setrlimit(resource.RLIMIT_AS, (1536 * 2**20, 1536 * 2**20))
    sys.path[:0] = ["functions"]
    from screening.preprocessing import ImageRejected, preprocess_bytes
    try:
        preprocess_bytes(sys.stdin.buffer.read())
    except ImageRejected:
        pass
""")


def preprocessing_bounds_memory(data: bytes) -> bool:
    """Whether preprocessing survives this image in 1.5 GB (in a child, so a runaway allocation
    cannot reach the local cloud, which runs in this process)."""
    try:
        done = subprocess.run([sys.executable, "-c", PROBE], input=data, timeout=30, capture_output=True)
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


# ---- the HTTP table --------------------------------------------------------------------------

def multipart(parts: list[tuple[str, str | None, bytes]], boundary: str = "b0undary") -> tuple[bytes, str]:
    """A multipart body built by hand, so that it can hold what a client library would refuse."""
    out = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        out += (f"--{boundary}\r\nContent-Disposition: {disposition}\r\n"
                f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def form(parts, boundary: str = "b0undary") -> dict:
    body, ctype = multipart(parts, boundary)
    return {"data": body, "headers": {"Content-Type": ctype}}


def raw_json(text: str | bytes) -> dict:
    return {"data": text.encode() if isinstance(text, str) else text, "headers": {"Content-Type": "application/json"}}


def cursor_of(value) -> str:
    return quote(base64.urlsafe_b64encode(json.dumps(value).encode()).decode())


VALID_CURSOR_KEYS = {"id": "a" * 32, "record_type": "prediction", "created_at": "2026-11-22T00:00:00.000+00:00"}
DEEP = "[" * 100_000 + "]" * 100_000
TINY_PNG = encoded(Image.new("RGB", (64, 64)), "PNG")


@dataclass
class Case:
    name: str
    method: str
    path: str
    request: Callable = lambda d: {}
    status: int = 400
    error: str | tuple[str, ...] | None = None  # a tuple: where the gateway or the API may answer
    allow: bool = False  # expect an Allow header
    prelude: Callable | None = None  # a request to send first (same kwargs), for idempotency cases
    marks: list = field(default_factory=list)


CASES: list[Case] = [
    *[Case(f"predict raw: {name}", "POST", "/predict",
           (lambda make: lambda d: {"data": make(d), "headers": {"Content-Type": "image/jpeg"}})(make), status, error)
      for name, make, status, error in BAD_IMAGES],
    Case("predict raw: body over the API limit", "POST", "/predict",
         lambda d: {"data": b"\xff" * (resources.MAX_API_BODY_BYTES + 1000),
                    "headers": {"Content-Type": "image/jpeg"}}, 413, "body_too_large"),
    Case("predict: text/plain", "POST", "/predict",
         lambda d: {"data": b"x", "headers": {"Content-Type": "text/plain"}}, 415, "unsupported_content_type"),
    Case("predict: no content type", "POST", "/predict", lambda d: {"data": b"x"}, 415, "missing_content_type"),
    Case("predict: heatmap=jpg", "POST", "/predict?heatmap=jpg",
         lambda d: {"data": good(d), "headers": {"Content-Type": "image/jpeg"}}, 400, "invalid_heatmap"),
    Case("predict: octet-stream", "POST", "/predict",
         lambda d: {"data": good(d), "headers": {"Content-Type": "application/octet-stream"}}, 415,
         "unsupported_content_type"),
    # multipart
    Case("predict multipart: garbage", "POST", "/predict",
         lambda d: {"data": b"--zz\r\nnonsense", "headers": {"Content-Type": "multipart/form-data; boundary=zz"}},
         400, "malformed_multipart"),
    Case("predict multipart: no boundary", "POST", "/predict",
         lambda d: {"data": b"x", "headers": {"Content-Type": "multipart/form-data"}}, 400, "malformed_multipart"),
    Case("predict multipart: no file field", "POST", "/predict",
         lambda d: form([("other", "a.txt", b"x")]), 400, "missing_file"),
    Case("predict multipart: two file fields", "POST", "/predict",
         lambda d: form([("file", "a.jpg", good(d)), ("file", "b.jpg", good(d))]), 400, "too_many_files"),
    Case("predict multipart: 450 KB field name", "POST", "/predict",
         lambda d: form([("f" * 450_000, "a.jpg", good(d))]), 400, "form_name_too_long"),
    Case("predict multipart: 300-char file name", "POST", "/predict",
         lambda d: form([("file", "n" * 300 + ".jpg", good(d))]), 400, "form_name_too_long"),
    Case("predict multipart: 100 parts", "POST", "/predict",
         lambda d: form([(f"p{i}", None, b"x") for i in range(100)]), 413, "too_many_parts"),
    Case("predict multipart: empty file", "POST", "/predict", lambda d: form([("file", "a.jpg", b"")]), 400, "empty"),
    Case("predict multipart: text as file", "POST", "/predict",
         lambda d: form([("file", "a.jpg", b"plain text")]), 400, "not_an_image"),
    # JSON
    Case("predict json: malformed", "POST", "/predict", lambda d: raw_json("{not json"), 400, "malformed_json"),
    Case("predict json: an array", "POST", "/predict", lambda d: raw_json("[1, 2]"), 400, "malformed_json"),
    Case("predict json: 100,000-deep nesting", "POST", "/predict", lambda d: raw_json(DEEP), 400,
         "json_too_deep"),
    Case("predict json: 20-deep object", "POST", "/predict",
         lambda d: raw_json('{"s3_key": "incoming/a.jpg", "x": ' + "[" * 20 + "]" * 20 + "}"), 400, "json_too_deep"),
    Case("predict json: invalid UTF-8", "POST", "/predict", lambda d: raw_json(b'{"s3_key": "\xff\xfe"}'), 400,
         "malformed_json"),
    Case("predict json: 5000-digit number", "POST", "/predict", lambda d: raw_json('{"n": ' + "1" * 5000 + "}"),
         400, "malformed_json"),
    Case("predict json: no s3_key", "POST", "/predict", lambda d: raw_json("{}"), 400, "missing_s3_key"),
    Case("predict json: s3_key a number", "POST", "/predict", lambda d: {"json": {"s3_key": 7}}, 400,
         "missing_s3_key"),
    Case("predict json: s3_key a list", "POST", "/predict", lambda d: {"json": {"s3_key": ["incoming/a"]}}, 400,
         "missing_s3_key"),
    Case("predict json: s3_key NaN", "POST", "/predict", lambda d: raw_json('{"s3_key": NaN}'), 400,
         "missing_s3_key"),
    Case("predict json: s3_key outside incoming/", "POST", "/predict", lambda d: {"json": {"s3_key": "results/x"}},
         400, "invalid_s3_key"),
    Case("predict json: s3_key with ..", "POST", "/predict",
         lambda d: {"json": {"s3_key": "incoming/../models/current/x"}}, 400, "invalid_s3_key"),
    Case("predict json: s3_key with NUL", "POST", "/predict", lambda d: {"json": {"s3_key": "incoming/a\u0000.jpg"}},
         400, "invalid_s3_key"),
    Case("predict json: s3_key with lone surrogate", "POST", "/predict",
         lambda d: raw_json('{"s3_key": "incoming/\\ud800.jpg"}'), 400, "invalid_s3_key"),
    Case("predict json: s3_key 2000 chars", "POST", "/predict",
         lambda d: {"json": {"s3_key": "incoming/" + "k" * 2000}}, 400, "invalid_s3_key"),
    Case("predict json: s3_key a folder marker", "POST", "/predict", lambda d: {"json": {"s3_key": "incoming/x/"}},
         400, "invalid_s3_key"),
    Case("predict json: unknown s3_key", "POST", "/predict", lambda d: {"json": {"s3_key": "incoming/nope.jpg"}},
         404, "unknown_s3_key"),
    Case("predict json: unknown field", "POST", "/predict",
         lambda d: {"json": {"s3_key": "incoming/nope.jpg", "admin": True}}, 400, "unknown_field"),
    # Idempotency-Key
    Case("predict: Idempotency-Key with a space", "POST", "/predict",
         lambda d: {"data": good(d), "headers": {"Content-Type": "image/jpeg", "Idempotency-Key": "a b"}}, 400,
         "invalid_idempotency_key"),
    Case("predict: Idempotency-Key of 300 chars", "POST", "/predict",
         lambda d: {"data": good(d), "headers": {"Content-Type": "image/jpeg", "Idempotency-Key": "k" * 300}}, 400,
         "invalid_idempotency_key"),
    Case("predict: Idempotency-Key reused for another image", "POST", "/predict",
         lambda d: {"data": (d / "glaucoma/Im353_g_ACRIMA.jpg").read_bytes(),
                    "headers": {"Content-Type": "image/jpeg", "Idempotency-Key": "bad-input-reuse"}}, 422,
         "idempotency_key_reused",
         prelude=lambda d: {"data": good(d), "headers": {"Content-Type": "image/jpeg",
                                                         "Idempotency-Key": "bad-input-reuse"}}),
    # batch
    Case("batch: not multipart", "POST", "/predict/batch", lambda d: {"json": {}}, 415, "unsupported_content_type"),
    Case("batch: 17 images", "POST", "/predict/batch",
         lambda d: form([("images", f"{i}.png", TINY_PNG) for i in range(resources.MAX_BATCH_IMAGES + 1)]), 413,
         "too_many_images"),
    Case("batch: over the byte limit", "POST", "/predict/batch",
         lambda d: form([("images", "big.jpg", b"\xff" * (resources.MAX_BATCH_BYTES + 1000))]), 413,
         ("batch_too_large", "body_too_large")),  # the batch limit is the body ceiling (issue 10)
    Case("batch: 450 KB field name beside two good images", "POST", "/predict/batch",
         lambda d: form([("images", "a.jpg", good(d)), ("f" * 450_000, "b.jpg", good(d)),
                         ("images", "c.jpg", good(d))]), 400, "form_name_too_long"),
    Case("batch: no parts", "POST", "/predict/batch",
         lambda d: {"data": b"--b\r\n\r\n--b--\r\n", "headers": {"Content-Type": "multipart/form-data; boundary=b"}},
         400, "malformed_multipart"),
    Case("batch: a text field beside an image", "POST", "/predict/batch",
         lambda d: form([("images", "a.jpg", good(d)), ("note", None, b"{}")]), 400, "missing_filename"),
    Case("batch: 100,000-deep JSON", "POST", "/predict/batch", lambda d: raw_json(DEEP), 415,
         "unsupported_content_type"),
    # listing
    *[Case(f"list: limit={raw}", "GET", f"/predictions?limit={quote(raw)}", status=400, error="invalid_limit")
      for raw in ("²", "٣", "0", "101", "-1", "1.5", "", "1e2", " 5", "0x10", "99999999999999999999")],
    Case("list: label=maybe", "GET", "/predictions?label=maybe", status=400, error="invalid_label"),
    Case("list: label empty", "GET", "/predictions?label=", status=400, error="invalid_label"),
    Case("list: cursor not base64", "GET", "/predictions?cursor=%25%25%25", status=400, error="invalid_cursor"),
    Case("list: cursor of 3000 chars", "GET", "/predictions?cursor=" + "A" * 3000, status=400, error="invalid_cursor"),
    Case("list: cursor holding a list", "GET", f"/predictions?cursor={cursor_of([1, 2])}", status=400,
         error="invalid_cursor"),
    Case("list: cursor holding objects", "GET",
         f"/predictions?cursor={cursor_of({**VALID_CURSOR_KEYS, 'id': {'S': 'x'}})}", status=400,
         error="invalid_cursor"),
    Case("list: cursor holding lists", "GET",
         f"/predictions?cursor={cursor_of({**VALID_CURSOR_KEYS, 'created_at': ['x']})}", status=400,
         error="invalid_cursor"),
    Case("list: cursor holding numbers", "GET",
         f"/predictions?cursor={cursor_of({**VALID_CURSOR_KEYS, 'id': 5})}", status=400, error="invalid_cursor"),
    Case("list: cursor holding null", "GET",
         f"/predictions?cursor={cursor_of({**VALID_CURSOR_KEYS, 'id': None})}", status=400, error="invalid_cursor"),
    Case("list: cursor with an extra key", "GET",
         f"/predictions?cursor={cursor_of({**VALID_CURSOR_KEYS, 'x': 'y'})}", status=400, error="invalid_cursor"),
    Case("list: cursor deeply nested", "GET", f"/predictions?cursor={cursor_of(json.loads('[' * 500 + ']' * 500))}",
         status=400, error="invalid_cursor"),
    Case("list: cursor of another partition", "GET",
         f"/predictions?cursor={cursor_of({**VALID_CURSOR_KEYS, 'record_type': 'counters'})}", status=400,
         error="invalid_cursor"),
    Case("list: cursor of label=normal used for label=glaucoma", "GET",
         "/predictions?label=glaucoma&cursor=" + cursor_of({"id": "a" * 32, "label": "normal",
                                                           "created_at": "2026-11-22T00:00:00.000+00:00"}),
         status=400, error="invalid_cursor"),
    # one record
    Case("get: unknown id", "GET", "/predictions/" + "0" * 32, status=404, error="unknown_id"),
    Case("get: malformed id", "GET", "/predictions/does-not-exist", status=404, error="unknown_id"),
    Case("get: the counters item", "GET", "/predictions/%23counters", status=404, error=("unknown_id", "not_found")),
    Case("get: 3000-char id", "GET", "/predictions/" + "a" * 3000, status=404, error="unknown_id"),
    # uploads
    *[Case(f"uploads: content_type {label}", "POST", "/uploads",
           (lambda v: lambda d: {"json": {"content_type": v}})(v), 400, "invalid_content_type")
      for label, v in (("[]", []), ("{}", {}), ("null", None), ("7", 7), ("text/html", "text/html"))],
    Case("uploads: unknown field", "POST", "/uploads", lambda d: {"json": {"content_type": "image/png", "acl": "x"}},
         400, "unknown_field"),
    Case("uploads: malformed JSON", "POST", "/uploads", lambda d: raw_json("{"), 400, "malformed_json"),
    Case("uploads: 100,000-deep JSON", "POST", "/uploads", lambda d: raw_json(DEEP), 400, "json_too_deep"),
    Case("uploads: text/plain body", "POST", "/uploads",
         lambda d: {"data": b"content_type=image/png", "headers": {"Content-Type": "text/plain"}}, 415,
         "unsupported_content_type"),
    # routes and methods
    Case("DELETE /predict", "DELETE", "/predict", status=405, error="method_not_allowed", allow=True),
    Case("GET /predict", "GET", "/predict", status=405, error="method_not_allowed", allow=True),
    Case("PUT /status", "PUT", "/status", status=405, error="method_not_allowed", allow=True),
    Case("PATCH /predictions/{id}", "PATCH", "/predictions/" + "0" * 32, status=405, error="method_not_allowed",
         allow=True),
    Case("unknown route", "GET", "/admin", status=404, error="not_found"),
    # the gateway's own answers (localcloud/, issue 12's gateway part)
    Case("gateway: no API key", "GET", "/status", lambda d: {"headers": {"x-api-key": None}}, 403, "forbidden"),
    Case("gateway: wrong API key", "GET", "/status", lambda d: {"headers": {"x-api-key": "guess"}}, 403,
         "forbidden"),
    Case("gateway: body over 10 MB", "POST", "/predict",
         lambda d: {"data": b"\0" * (10 * 1024 * 1024 + 1), "headers": {"Content-Type": "image/jpeg"}}, 413,
         "payload_too_large"),
    Case("gateway: TRACE", "TRACE", "/status", status=405, error="method_not_allowed", allow=True),
    Case("gateway: HEAD on a GET-only route", "HEAD", "/predict", status=405, allow=True),
]


def raw_exchange(cloud, request: bytes, timeout: float = 5.0) -> tuple[int, dict, bytes]:
    """Send bytes a client library would not; (status, headers, body) of the answer."""
    with socket.create_connection(("127.0.0.1", cloud.api_port), timeout=timeout) as sock:
        sock.sendall(request)
        data = b""
        try:
            while b"\r\n\r\n" not in data or len(data) < _expected_length(data):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except socket.timeout:
            pass
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines and lines[0].startswith("HTTP/") else 0
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, headers, body


def _expected_length(data: bytes) -> int:
    head, sep, _ = data.partition(b"\r\n\r\n")
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length" and value.strip().isdigit():
            return len(head) + len(sep) + int(value.strip())
    return len(data)


def raw_request(cloud, head: str, body: bytes = b"") -> bytes:
    return (head.replace("KEY", cloud.api_key).replace("\n", "\r\n") + "\r\n").encode() + body


RAW_CASES = [
    # (name, request bytes builder, status, error)
    ("gateway: Content-Length -1", lambda c: raw_request(
        c, "POST /predict HTTP/1.1\nHost: x\nx-api-key: KEY\nContent-Type: image/jpeg\nContent-Length: -1\n"),
     400, "invalid_content_length"),
    ("gateway: Content-Length not a number", lambda c: raw_request(
        c, "POST /predict HTTP/1.1\nHost: x\nx-api-key: KEY\nContent-Type: image/jpeg\nContent-Length: ten\n"),
     400, "invalid_content_length"),
    ("gateway: Content-Length longer than the body", lambda c: raw_request(
        c, "POST /predict HTTP/1.1\nHost: x\nx-api-key: KEY\nContent-Type: image/jpeg\nContent-Length: 1000\n",
        b"short"), 400, "incomplete_body"),
    ("gateway: 100 KB header", lambda c: raw_request(
        c, "GET /status HTTP/1.1\nHost: x\nx-api-key: KEY\nx-filler: " + "a" * 100_000 + "\n"), 431,
     "headers_too_large"),
    ("gateway: 20 KB URL", lambda c: raw_request(
        c, "GET /predictions?label=" + "a" * 20_000 + " HTTP/1.1\nHost: x\nx-api-key: KEY\n"), 414, "uri_too_long"),
]


def send(api, cloud, case: Case, sample_dir, kwargs: dict):
    import requests

    headers = {"x-api-key": cloud.api_key, **kwargs.pop("headers", {})}
    headers = {k: v for k, v in headers.items() if v is not None}
    return requests.request(case.method, cloud.api_url + case.path, headers=headers, timeout=60, **kwargs)


def test_the_table_holds_at_least_sixty_kinds():
    assert len(CASES) + len(RAW_CASES) + 1 >= 60


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_request_gets_its_status_and_json_error(api, cloud, sample_dir, case):
    if case.prelude:
        first = send(api, cloud, case, sample_dir, case.prelude(sample_dir))
        assert first.status_code == 200, first.text
    response = send(api, cloud, case, sample_dir, case.request(sample_dir))
    assert response.status_code == case.status, response.text[:500]
    if case.allow:
        assert case.method not in response.headers.get("Allow", "") and "OPTIONS" in response.headers["Allow"]
    if case.method == "HEAD":
        return
    body = response.json()
    expected = case.error if isinstance(case.error, tuple) else (case.error,)
    assert body["error"] in expected and isinstance(body["message"], str) and body["message"]
    assert len(response.content) < 4096  # an error never echoes a huge input back


@pytest.mark.parametrize("name,build,status,error", RAW_CASES, ids=[c[0] for c in RAW_CASES])
def test_malformed_http_gets_a_json_error_not_a_hang(cloud, name, build, status, error):
    got_status, headers, body = raw_exchange(cloud, build(cloud))
    assert got_status == status, body[:300]
    assert json.loads(body)["error"] == error


def test_extreme_aspect_ratio_is_answered_within_bounded_memory(api):
    name, make = EXTREME_ASPECT
    data = make(None)
    if not preprocessing_bounds_memory(data):
        pytest.xfail("preprocessing pads before it shrinks: a 32x1,250,000 PNG needs terabytes")
    response = api.post("/predict", data=data, headers={"Content-Type": "image/png"})
    assert response.status_code in (200, 400, 413), response.text
    if response.status_code != 200:
        assert response.json()["error"]


def test_a_rejected_batch_stores_and_counts_nothing(api, table, sample_dir):
    before = api.get("/status").json()["counts"]
    body, ctype = multipart([("images", "a.jpg", good(sample_dir)), ("f" * 450_000, "b.jpg", good(sample_dir))])
    response = api.post("/predict/batch", data=body, headers={"Content-Type": ctype})
    assert response.status_code == 400
    assert api.get("/status").json()["counts"] == before


def test_batch_answers_every_part_by_field_and_file_name(api, sample_dir):
    body, ctype = multipart([("left", "left eye.jpg", good(sample_dir)), ("right", "r.jpg", b"garbage")])
    response = api.post("/predict/batch", data=body, headers={"Content-Type": ctype})
    assert response.status_code == 200, response.text
    first, second = response.json()["results"]
    assert first["part"] == {"index": 0, "field": "left", "filename": "left eye.jpg"} and first["status"] == "ok"
    assert second["part"] == {"index": 1, "field": "right", "filename": "r.jpg"}
    assert second["status"] == "rejected" and second["reason"] == "not_an_image"
    for part in (first, second):  # every part has an id that can be looked up
        assert api.get(f"/predictions/{part['id']}").json()["status"] == part["status"]


@pytest.mark.parametrize("path,kind", [("/predict", "raw"), ("/predict/batch", "batch")])
def test_idempotency_key_replays_the_first_answer_and_stores_once(api, sample_dir, path, kind):
    key = f"retry-{kind}-0001"
    if kind == "raw":
        kwargs = {"data": good(sample_dir), "headers": {"Content-Type": "image/jpeg", "Idempotency-Key": key}}
    else:
        body, ctype = multipart([("a", "a.jpg", good(sample_dir)), ("b", "b.jpg", b"nope")])
        kwargs = {"data": body, "headers": {"Content-Type": ctype, "Idempotency-Key": key}}
    before = api.get("/status").json()["counts"]
    first = api.post(path, **kwargs)
    second = api.post(path, **kwargs)
    assert first.status_code == second.status_code == 200, first.text
    assert second.json() == first.json()
    assert second.headers.get("Idempotent-Replayed") == "true" and "Idempotent-Replayed" not in first.headers
    after = api.get("/status").json()["counts"]
    stored = 1 if kind == "raw" else 2
    assert sum(after.values()) - sum(before.values()) == stored


# ---- the S3 path -----------------------------------------------------------------------------

def test_every_bad_image_through_s3_ends_in_one_record_and_spares_its_batch_mates(cloud, table, sample_dir):
    s3, sqs = cloud.client("s3"), cloud.client("sqs")
    bucket = cloud.names.image_bucket
    goods = sorted((sample_dir / "normal").glob("*.jpg"))[:3] + sorted((sample_dir / "glaucoma").glob("*.jpg"))[:3]
    uploads = {}  # key -> (etag, expected reason or "ok")
    for i, (name, make, _, reason) in enumerate(b for b in BAD_IMAGES if b[0] not in QUALITY_GATE_KINDS):
        key = f"incoming/bad-kinds/{i:02d}.img"
        uploads[key] = (s3.put_object(Bucket=bucket, Key=key, Body=make(sample_dir))["ETag"], reason)
        if i < len(goods):  # good images interleaved, so that they share batches with bad ones
            good_key = f"incoming/bad-kinds/good-{i}.jpg"
            uploads[good_key] = (s3.put_object(Bucket=bucket, Key=good_key, Body=goods[i].read_bytes())["ETag"],
                                 "ok")
    marker_etag = s3.put_object(Bucket=bucket, Key="incoming/bad-kinds/folder/", Body=b"")["ETag"]

    def record(key):
        etag, _ = uploads[key]
        return table.get_item(Key={"id": s3_record_id(bucket, key, etag)}, ConsistentRead=True).get("Item")

    done, waited = wait_for(lambda: all(record(k) for k in uploads), timeout=60, interval=0.3)
    missing = [k for k in uploads if not record(k)]
    assert not missing, f"no record after {waited:.0f} s for {missing}"
    items = table.scan()["Items"]
    for key, (_, expected) in uploads.items():
        matching = [i for i in items if i.get("key") == key]
        assert len(matching) == 1, key
        item = matching[0]
        if expected == "ok":
            assert item["status"] == "ok", (key, item.get("reason"))
        else:
            assert item["status"] == "rejected" and item["reason"] == expected, (key, item.get("reason"))
    assert not [i for i in items if i.get("key") == "incoming/bad-kinds/folder/"]
    assert table.get_item(Key={"id": s3_record_id(bucket, "incoming/bad-kinds/folder/", marker_etag)}).get(
        "Item") is None
    dead = sqs.receive_message(QueueUrl=cloud.resources.dead_letter_queue_url, MaxNumberOfMessages=10,
                               VisibilityTimeout=0).get("Messages", [])
    assert not [m for m in dead if "bad-kinds" in m["Body"]]


def test_blank_frames_through_s3_are_rejected_alone(cloud, table, sample_dir):
    s3 = cloud.client("s3")
    bucket = cloud.names.image_bucket
    uploads = {f"incoming/blank/{i}.jpg": (make(sample_dir), reason)
               for i, (name, make, _, reason) in enumerate(BAD_IMAGES) if name in QUALITY_GATE_KINDS}
    uploads["incoming/blank/good.jpg"] = (good(sample_dir), "ok")
    etags = {k: s3.put_object(Bucket=bucket, Key=k, Body=data)["ETag"] for k, (data, _) in uploads.items()}

    def record(key):
        return table.get_item(Key={"id": s3_record_id(bucket, key, etags[key])}, ConsistentRead=True).get("Item")

    wait_for(lambda: all(record(k) for k in uploads), timeout=30, interval=0.3)
    outcomes = {k: (record(k) or {}).get("reason", (record(k) or {}).get("status")) for k in uploads}
    assert outcomes == {k: reason for k, (_, reason) in uploads.items()}


def test_poison_image_in_an_sqs_batch_of_ten_leaves_nine_ok_records(cloud, table, sample_dir):
    poison = extreme_aspect_png()
    if not preprocessing_bounds_memory(poison):
        pytest.xfail("preprocessing pads before it shrinks: a 32x1,250,000 PNG needs terabytes")
    s3 = cloud.client("s3")
    bucket = cloud.names.image_bucket
    files = sorted((sample_dir / "normal").glob("*.jpg"))[:5] + sorted((sample_dir / "glaucoma").glob("*.jpg"))[:4]
    keys = {}
    for i, path in enumerate(files[:4]):
        keys[f"incoming/poison/{i}.jpg"] = s3.put_object(Bucket=bucket, Key=f"incoming/poison/{i}.jpg",
                                                         Body=path.read_bytes())["ETag"]
    keys["incoming/poison/poison.png"] = s3.put_object(Bucket=bucket, Key="incoming/poison/poison.png",
                                                       Body=poison)["ETag"]
    for i, path in enumerate(files[4:], start=4):
        keys[f"incoming/poison/{i}.jpg"] = s3.put_object(Bucket=bucket, Key=f"incoming/poison/{i}.jpg",
                                                         Body=path.read_bytes())["ETag"]

    def record(key):
        return table.get_item(Key={"id": s3_record_id(bucket, key, keys[key])}, ConsistentRead=True).get("Item")

    goods = [k for k in keys if "poison.png" not in k]
    wait_for(lambda: all(record(k) for k in goods), timeout=60, interval=0.3)
    assert [record(k)["status"] if record(k) else None for k in goods] == ["ok"] * 9
