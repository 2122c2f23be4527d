"""A local stand-in for API Gateway (REST, Lambda proxy integration).

Each HTTP request on 127.0.0.1 becomes a proxy event v1 for the real API
handler, with API Gateway's behaviours that matter to it: the API key check,
binary media types delivered base64-encoded, the 10 MB payload limit, and the
handler's response mapped back to HTTP.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import parse_qs, urlsplit

from localcloud import metrics_view, static_site
from localcloud.lambda_context import LambdaContext

log = logging.getLogger("localcloud.api")
BINARY_MEDIA_TYPES = ("image/", "multipart/form-data", "application/octet-stream")
PAYLOAD_LIMIT = 10 * 1024 * 1024
API_KEY_EXEMPT = ("OPTIONS",)


def proxy_event(method: str, raw_path: str, headers: dict[str, str], body: bytes, stage: str) -> dict:
    url = urlsplit(raw_path)
    query = parse_qs(url.query, keep_blank_values=True)
    content_type = headers.get("content-type", headers.get("Content-Type", "")).lower()
    binary = any(content_type.startswith(t) for t in BINARY_MEDIA_TYPES)
    return {
        "resource": url.path,
        "path": url.path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": url.path, "httpMethod": method, "path": f"/{stage}{url.path}", "stage": stage,
            "requestId": str(uuid.uuid4()), "requestTimeEpoch": int(time.time() * 1000),
            "identity": {"sourceIp": "127.0.0.1", "apiKey": headers.get("x-api-key")},
        },
        "body": (base64.b64encode(body).decode() if binary else body.decode("utf-8", "surrogateescape"))
        if body else None,
        "isBase64Encoded": bool(body) and binary,
    }


def make_server(host: str, port: int, handler: Callable[[dict, object], dict], api_key: str,
                stage: str = "local") -> ThreadingHTTPServer:
    lock = threading.Lock()  # one Lambda container: one request at a time, like reserved concurrency 1
    metrics_view.install()  # the functions' EMF lines, for the page's monitoring tab

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):  # the handler logs; keep stderr quiet
            pass

        def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):  # the client went away
                self.close_connection = True

        def _gateway_error(self, status: int, message: str) -> None:
            self._send(status, {"Content-Type": "application/json", "x-amzn-ErrorType": "GatewayError"},
                       json.dumps({"message": message}).encode())

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > PAYLOAD_LIMIT:
                self.close_connection = True
                return self._gateway_error(413, "Request Too Long")
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            static = static_site.static_response(self.command, self.path)  # the page: public, no key
            if static is not None:
                return self._send(*static)
            if self.command not in API_KEY_EXEMPT and headers.get("x-api-key") != api_key:
                return self._gateway_error(403, "Forbidden")
            if self.command == "GET" and urlsplit(self.path).path == metrics_view.ROUTE:
                return self._send(*metrics_view.response(urlsplit(self.path).query))
            event = proxy_event(self.command, self.path, headers, body, stage)
            try:
                with lock:
                    response = handler(event, LambdaContext.for_function("api"))
            except Exception:  # an unhandled Lambda error: API Gateway answers 502
                log.exception("API handler failed")
                return self._gateway_error(502, "Internal server error")
            payload = response.get("body") or ""
            data = base64.b64decode(payload) if response.get("isBase64Encoded") else payload.encode()
            out_headers = dict(response.get("headers") or {})
            for key, values in (response.get("multiValueHeaders") or {}).items():
                out_headers[key] = ", ".join(values)
            self._send(int(response.get("statusCode", 200)), out_headers, data)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _handle

    return ThreadingHTTPServer((host, port), Handler)
