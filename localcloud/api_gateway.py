"""What API Gateway (REST, Lambda proxy integration) does before and after the handler.

Each HTTP request becomes a proxy event v1 for the real API handler, with API
Gateway's behaviours that matter to it: the API key check (several keys, each
a clinic's, named in requestContext.identity), binary media types delivered
base64-encoded, the 10 MB payload limit, JSON errors of its own, and the
handler's response mapped back to HTTP. The routes and methods it knows come
from the handler's own resolver, never from a second list.
"""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

BINARY_MEDIA_TYPES = ("image/", "multipart/form-data", "application/octet-stream")
PAYLOAD_LIMIT = 10 * 1024 * 1024
API_KEY_EXEMPT_METHODS = ("OPTIONS",)  # CORS preflight carries no key
DEFAULT_API_KEY = "local-dev-key"
ADMIN_KEY_ID = "admin"


def proxy_event(method: str, raw_path: str, headers: dict[str, str], body: bytes, stage: str,
                api_key: str | None = None, api_key_id: str | None = None) -> dict:
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
            "identity": {"sourceIp": "127.0.0.1", "apiKey": api_key if api_key is not None
                         else headers.get("x-api-key"), "apiKeyId": api_key_id},
        },
        "body": (base64.b64encode(body).decode() if binary else body.decode("utf-8", "surrogateescape"))
        if body else None,
        "isBase64Encoded": bool(body) and binary,
    }


def error_body(error: str, message: str) -> bytes:
    """Every answer of the gateway's own is JSON {error, message}, as the handler's are."""
    return json.dumps({"error": error, "message": message}).encode()


def parse_api_keys(spec: str) -> dict[str, str]:
    """'clinic-a=key1,clinic-b=key2' -> {key: key id}. An entry without '=' is its own id."""
    keys: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in (spec or "").split(","))):
        name, sep, key = part.partition("=")
        name, key = (name.strip(), key.strip()) if sep else (name.strip(), name.strip())
        if not name or not key:
            raise ValueError(f"bad API key entry {part!r}: write name=key")
        keys[key] = name
    return keys


@dataclass(frozen=True)
class RouteTable:
    """The handler's routes: (compiled path pattern, method)."""

    routes: tuple[tuple[re.Pattern, str], ...]

    @classmethod
    def from_resolver(cls, resolver) -> "RouteTable":
        routes = list(getattr(resolver, "_static_routes", [])) + list(getattr(resolver, "_dynamic_routes", []))
        if not routes:
            routes = list(getattr(resolver, "_routes", []))
        return cls(tuple((route.rule, route.method.upper()) for route in routes))

    def allowed(self, path: str) -> set[str]:
        """Methods the handler serves on this path (empty: no such route)."""
        return {method for rule, method in self.routes if rule.match(path)}
