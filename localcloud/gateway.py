"""The API process: gunicorn pre-forks N workers, each a Lambda "container" for the API handler.

    python -m localcloud.gateway --port P --workers N [--api-keys clinic-a=k1,...]

Each worker loads the model once when it starts (gunicorn's post_worker_init,
Lambda's init phase) and serves one request at a time, as a Lambda container
does; the master replaces a worker that dies (kill -9 included). The WSGI app
below is the local API Gateway: it turns HTTP into proxy events
(localcloud/api_gateway.py) and answers its own errors as JSON.
"""

from __future__ import annotations

import argparse
import base64
import logging
import os
import re
import socket
import sys
import time
from pathlib import Path
from typing import Callable, Iterable

from gunicorn.app.base import BaseApplication
from gunicorn.http import errors as http_errors
from gunicorn.workers.sync import SyncWorker

from localcloud import metrics_view
from localcloud.api_gateway import (
    API_KEY_EXEMPT_METHODS,
    PAYLOAD_LIMIT,
    RouteTable,
    error_body,
    parse_api_keys,
    proxy_event,
)
from localcloud.lambda_context import LambdaContext

log = logging.getLogger("localcloud.gateway")
ROOT = Path(__file__).resolve().parent.parent
BODY_READ_TIMEOUT_S = 2.0  # a client that promises more body than it sends gets 400 after this
STATUS_TEXT = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
               413: "Payload Too Large", 414: "URI Too Long", 431: "Request Header Fields Too Large",
               500: "Internal Server Error", 501: "Not Implemented", 502: "Bad Gateway"}


def public_file(method: str, raw_path: str) -> tuple[int, dict[str, str], bytes] | None:
    """The key-less web page (localcloud/static_site.py): its answer, or None for an API path."""
    from localcloud import static_site

    return static_site.static_response(method, raw_path)


def keyless_routes() -> tuple[re.Pattern, ...]:
    """API routes that need no key: the OpenAPI document's operations with `security: []`
    (the document, its Swagger UI page and assets), as API Gateway is configured."""
    from handlers import openapi_spec

    patterns = []
    for template, operations in openapi_spec.PATHS.items():
        if any(op.get("security") == [] for op in operations.values() if isinstance(op, dict)):
            regex = re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(template))
            patterns.append(re.compile(f"^{regex}$"))
    return tuple(patterns)


class GatewayApp:
    """HTTP in, API Gateway proxy event to `handler`, HTTP out."""

    def __init__(self, handler: Callable[[dict, object], dict], routes: RouteTable, api_keys: dict[str, str],
                 stage: str = "local") -> None:
        self.handler = handler
        self.routes = routes
        self.api_keys = api_keys  # key -> key id (clinic or admin)
        self.stage = stage
        self.keyless = keyless_routes()

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        status, headers, body = self.respond(environ)
        if environ["REQUEST_METHOD"] == "HEAD":
            headers = [*headers, ("Content-Length", str(len(body)))]
            body = b""
        else:
            headers = [*headers, ("Content-Length", str(len(body)))]
        start_response(f"{status} {STATUS_TEXT.get(status, 'Status')}", headers)
        return [body]

    @staticmethod
    def error(status: int, error: str, message: str, extra: list[tuple[str, str]] = ()) -> tuple:
        return status, [("Content-Type", "application/json"), ("x-amzn-ErrorType", "GatewayError"),
                        *extra], error_body(error, message)

    def respond(self, environ: dict) -> tuple[int, list[tuple[str, str]], bytes]:
        method = environ["REQUEST_METHOD"].upper()
        path = environ.get("PATH_INFO") or "/"
        page = public_file(method, path)
        if page is not None:
            status, page_headers, data = page
            return status, list(page_headers.items()), data
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return self.error(400, "invalid_content_length", "Content-Length must be a whole number.")
        if length < 0:
            return self.error(400, "invalid_content_length", "Content-Length must not be negative.")
        if length > PAYLOAD_LIMIT:
            return self.error(413, "payload_too_large",
                              f"The request is {length} bytes; API Gateway's limit is {PAYLOAD_LIMIT}.")
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        key = headers.get("x-api-key")
        keyless = any(pattern.match(path) for pattern in self.keyless)
        if method not in API_KEY_EXEMPT_METHODS and key not in self.api_keys and not keyless:
            return self.error(403, "forbidden", "Forbidden")
        if method == "GET" and path == metrics_view.ROUTE:  # the local dashboard's data
            status, metric_headers, data = metrics_view.response(environ.get("QUERY_STRING", ""))
            return status, list(metric_headers.items()), data
        allowed = self.routes.allowed(path)
        if not allowed:
            return self.error(404, "not_found", f"No route {method} {path}.")
        if method not in allowed and method != "OPTIONS":
            allow = ", ".join(sorted(allowed | {"OPTIONS"}))
            return self.error(405, "method_not_allowed", f"{path} accepts {allow}, not {method}.",
                              [("Allow", allow)])
        try:
            body = read_body(environ, length)
        except (TimeoutError, socket.timeout, http_errors.NoMoreData, ConnectionError):
            return self.error(400, "incomplete_body",
                              f"The body ended before its Content-Length ({length} bytes).")
        if len(body) > PAYLOAD_LIMIT:
            return self.error(413, "payload_too_large", f"API Gateway's limit is {PAYLOAD_LIMIT} bytes.")
        query = environ.get("QUERY_STRING", "")
        event = proxy_event(method, path + (f"?{query}" if query else ""), headers, body, self.stage,
                            api_key=key, api_key_id=self.api_keys.get(key))
        try:
            response = self.handler(event, LambdaContext.for_function("api"))
        except Exception:  # an unhandled Lambda error: API Gateway answers 502
            log.exception("API handler failed")
            return self.error(502, "internal_error", "Internal server error")
        payload = response.get("body") or ""
        data = base64.b64decode(payload) if response.get("isBase64Encoded") else payload.encode()
        out = [(k, str(v)) for k, v in (response.get("headers") or {}).items() if k.lower() != "content-length"]
        for k, values in (response.get("multiValueHeaders") or {}).items():
            out.append((k, ", ".join(str(v) for v in values)))
        return int(response.get("statusCode", 200)), out, data


def read_body(environ: dict, length: int) -> bytes:
    stream = environ["wsgi.input"]
    if length:
        data = stream.read(length)
        if len(data) < length:
            raise http_errors.NoMoreData(data)
        return data
    if environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked":
        return stream.read(PAYLOAD_LIMIT + 1)
    return b""


class GatewayWorker(SyncWorker):
    """gunicorn's sync worker (one request at a time, like a Lambda container), with a read
    timeout on each connection and JSON for the errors gunicorn answers itself."""

    def accept(self, listener):
        client, addr = listener.accept()
        client.setblocking(True)
        client.settimeout(BODY_READ_TIMEOUT_S)
        self.handle(listener, client, addr)

    def handle_error(self, req, client, addr, exc):
        if isinstance(exc, http_errors.LimitRequestHeaders):
            status, error = 431, "headers_too_large"
        elif isinstance(exc, http_errors.LimitRequestLine):
            status, error = 414, "uri_too_long"
        elif isinstance(exc, http_errors.UnsupportedTransferCoding):
            status, error = 501, "unsupported_transfer_coding"
        elif isinstance(exc, (TimeoutError, socket.timeout)):
            status, error = 400, "incomplete_request"
        elif isinstance(exc, (http_errors.ParseException, ValueError)):
            status, error = 400, "bad_request"
        else:
            self.log.exception("Error handling request")
            status, error = 500, "internal_error"
        if isinstance(exc, http_errors.InvalidHeader) and "CONTENT-LENGTH" in str(exc).upper():
            error = "invalid_content_length"
        body = error_body(error, str(exc) or STATUS_TEXT.get(status, "error"))
        head = (f"HTTP/1.1 {status} {STATUS_TEXT.get(status, 'Error')}\r\nConnection: close\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
        try:
            client.sendall(head + body)
        except OSError:
            pass


def preload_runtime() -> None:
    """Lambda's init phase (model, clients, settings), run once in gunicorn's master before it
    forks: each worker starts from its own copy-on-write copy, as Lambda SnapStart restores a
    snapshot, so a replacement worker is ready in milliseconds instead of the ~0.5 s that
    creating the AWS clients costs. Only with one inference thread (no interpreter threads
    to lose in the fork); LOCAL_PRELOAD=0 turns it off."""
    if os.environ.get("LOCAL_PRELOAD", "1") != "0" and os.environ.get("INFERENCE_THREADS") == "1":
        from handlers.runtime import runtime

        runtime()


def post_fork(server, worker) -> None:
    """A connection the master's clients might hold must not be shared by two processes."""
    from handlers.runtime import runtime

    if runtime.cache_info().currsize:
        rt = runtime()
        for client in (rt.s3, rt.sqs, rt.service.store.client):
            session = getattr(getattr(client, "_endpoint", None), "http_session", None)
            if session is not None:
                session.close()


def post_worker_init(worker) -> None:
    """The init phase of a worker started without the master's copy: load the model now."""
    started = time.perf_counter()
    from handlers.runtime import runtime

    runtime()
    if os.environ.get("LOCAL_METRICS_FILE"):
        metrics_view.install()  # this worker's EMF lines, for the page's monitoring tab
    worker.log.info("worker %s ready in %.3f s", os.getpid(), time.perf_counter() - started)


class GatewayServer(BaseApplication):
    def __init__(self, app: GatewayApp, options: dict) -> None:
        self.application = app
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> GatewayApp:
        return self.application


def build_app(api_keys: dict[str, str]) -> GatewayApp:
    from handlers import api

    return GatewayApp(api.handler, RouteTable.from_resolver(api.app), api_keys)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--api-keys", default=os.environ.get("LOCAL_API_KEYS", ""),
                        help="name=key,... (default: the environment's LOCAL_API_KEYS)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = build_app(parse_api_keys(args.api_keys))
    preload_runtime()
    GatewayServer(app, {
        "bind": f"127.0.0.1:{args.port}",
        "workers": max(1, args.workers),
        "worker_class": "localcloud.gateway.GatewayWorker",
        "timeout": 35,  # above API Gateway's 29 s; a stuck worker is killed and replaced
        "graceful_timeout": 5,
        "backlog": 512,
        "post_fork": post_fork,
        "post_worker_init": post_worker_init,
        "loglevel": "info",
        "accesslog": None,
        "proc_name": "localcloud-api",
    }).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
