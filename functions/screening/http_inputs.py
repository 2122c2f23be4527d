"""Reading images out of API Gateway proxy requests, with a clear 4xx for every mistake."""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import HTTP

from screening.preprocessing import ImageRejected
from screening.records import InvalidCursor, decode_cursor

# Bounds on what a client controls, each answered with a 4xx when crossed.
MAX_JSON_DEPTH = 16  # our bodies are flat objects; anything deeper is not ours
MAX_FORM_NAME_CHARS = 256  # multipart field names and file names (they are stored in records)
MAX_MULTIPART_PARTS = 64
MAX_CURSOR_CHARS = 2048
MAX_CURSOR_VALUE_CHARS = 512
MAX_LIMIT = 100
MAX_IDEMPOTENCY_KEY_CHARS = 255
LIMIT_PATTERN = re.compile(r"[0-9]{1,3}")  # ASCII digits only: str.isdigit accepts '²'
IDEMPOTENCY_KEY_PATTERN = re.compile(r"[\x21-\x7e]{1,%d}" % MAX_IDEMPOTENCY_KEY_CHARS)
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")

# HTTP status for each rejection reason of the preprocessing.
REJECTION_STATUS = {
    "empty": 400,
    "not_an_image": 400,
    "truncated": 400,
    "too_small": 400,
    "unsupported_mode": 400,
    "unsupported_format": 415,
    "too_many_pixels": 413,
    "too_large": 413,
    "blank_image": 400,  # preprocessing: no non-black content (as the gate's blank_frame)
    "extreme_aspect_ratio": 400,  # preprocessing: a strip, not a photograph (as not_square_crop)
}


class ApiError(Exception):
    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message

    @classmethod
    def from_rejection(cls, exc: ImageRejected) -> "ApiError":
        return cls(REJECTION_STATUS.get(exc.reason, 400), exc.reason, exc.message)


@dataclass
class UploadedFile:
    field: str
    filename: str | None
    content_type: str | None
    data: bytes


def header(headers: dict | None, name: str) -> str:
    for key, value in (headers or {}).items():
        if key.lower() == name.lower():
            return value or ""
    return ""


def raw_body(body: str | None, is_base64: bool, limit: int) -> bytes:
    """The request body as bytes, refusing bodies over `limit` before decoding them."""
    if body is None:
        return b""
    if is_base64:
        if len(body) * 3 // 4 > limit + 3:
            raise ApiError(413, "body_too_large", f"The request body exceeds {limit} bytes.")
        try:
            data = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise ApiError(400, "malformed_body", "The body is marked base64 but is not valid base64.")
    else:
        data = body.encode("utf-8", errors="surrogateescape")
    if len(data) > limit:
        raise ApiError(413, "body_too_large", f"The request body is {len(data)} bytes; the limit is {limit}.")
    return data


def parse_multipart(data: bytes, content_type: str) -> list[UploadedFile]:
    """multipart/form-data parts, with the stdlib's MIME parser (no hand-written boundary code).

    Field and file names are bounded (they end up in records) and so is the number of parts.
    """
    if "boundary=" not in content_type:
        raise ApiError(400, "malformed_multipart", "The multipart content type has no boundary.")
    if CONTROL_CHARACTERS.search(content_type):
        raise ApiError(400, "malformed_multipart", "The multipart content type holds control characters.")
    try:
        message = BytesParser(policy=HTTP).parsebytes(
            b"Content-Type: " + content_type.encode("utf-8", "replace")
            + b"\r\nMIME-Version: 1.0\r\n\r\n" + data)
        if not message.is_multipart() or message.defects:
            raise ApiError(400, "malformed_multipart", "The multipart body could not be parsed.")
        raw_parts = list(message.iter_parts())
        if len(raw_parts) > MAX_MULTIPART_PARTS:
            raise ApiError(413, "too_many_parts", f"The multipart body has {len(raw_parts)} parts; "
                                                  f"the limit is {MAX_MULTIPART_PARTS}.")
        parts = []
        for part in raw_parts:
            disposition = str(part.get("Content-Disposition", ""))
            if not disposition.startswith("form-data"):
                continue
            field = part.get_param("name", header="content-disposition") or ""
            filename = part.get_filename()
            for what, name in (("field name", field), ("file name", filename or "")):
                if not isinstance(name, str) or len(name) > MAX_FORM_NAME_CHARS:
                    raise ApiError(400, "form_name_too_long",
                                   f"A multipart {what} is longer than {MAX_FORM_NAME_CHARS} characters.")
            payload = part.get_payload(decode=True)
            parts.append(UploadedFile(field=field, filename=filename, content_type=part.get_content_type(),
                                      data=payload if isinstance(payload, bytes) else b""))
    except ApiError:
        raise
    except Exception:  # the MIME parser's own errors on hostile input
        raise ApiError(400, "malformed_multipart", "The multipart body could not be parsed.")
    if not parts:
        raise ApiError(400, "malformed_multipart", "The multipart body holds no form fields.")
    return parts


def json_depth(value) -> int:
    """Nesting depth, iteratively (a recursive walk would be what the input attacks)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in (node.values() if isinstance(node, dict) else node))
    return deepest


def parse_json_object(data: bytes, allowed_fields: frozenset[str] | None = None) -> dict:
    """A JSON object body; its nesting bounded and, given `allowed_fields`, no other field."""
    try:
        value = json.loads(data)
    except RecursionError:
        raise ApiError(400, "json_too_deep", f"The JSON body nests deeper than {MAX_JSON_DEPTH} levels.")
    except (UnicodeDecodeError, ValueError):
        raise ApiError(400, "malformed_json", "The body is not valid JSON.")
    if not isinstance(value, dict):
        raise ApiError(400, "malformed_json", "The JSON body must be an object.")
    if json_depth(value) > MAX_JSON_DEPTH:
        raise ApiError(400, "json_too_deep", f"The JSON body nests deeper than {MAX_JSON_DEPTH} levels.")
    if allowed_fields is not None:
        unknown = sorted(set(value) - allowed_fields)
        if unknown:
            shown = ", ".join(repr(name[:40]) for name in unknown[:3])
            raise ApiError(400, "unknown_field", f"Unknown field(s) {shown}; allowed: "
                                                 f"{', '.join(sorted(allowed_fields))}.")
    return value


def parse_limit(raw: str | None, default: int = 20) -> int:
    """`limit` as ASCII digits from 1 to MAX_LIMIT."""
    if raw is None:
        return default
    if not LIMIT_PATTERN.fullmatch(raw) or not 1 <= int(raw) <= MAX_LIMIT:
        raise ApiError(400, "invalid_limit", f"limit must be an integer from 1 to {MAX_LIMIT}.")
    return int(raw)


def check_cursor(cursor: str | None, partition_name: str, partition_value: str) -> str | None:
    """The cursor if it has exactly the shape this API hands out for this query, else 400."""
    if cursor is None:
        return None
    invalid = ApiError(400, "invalid_cursor", "The cursor is not one this API returned for this query.")
    if not cursor or len(cursor) > MAX_CURSOR_CHARS:
        raise invalid
    try:
        key = decode_cursor(cursor)
    except (InvalidCursor, RecursionError, ValueError, TypeError):
        raise invalid
    expected = {"id", "created_at", partition_name}
    if set(key) != expected:
        raise invalid
    if not all(isinstance(v, str) and 0 < len(v) <= MAX_CURSOR_VALUE_CHARS for v in key.values()):
        raise invalid
    if key[partition_name] != partition_value:
        raise invalid
    return cursor


def idempotency_key(headers: dict | None) -> str | None:
    """The Idempotency-Key header: 1-255 visible ASCII characters, or absent (empty is invalid)."""
    present = [v for k, v in (headers or {}).items() if k.lower() == "idempotency-key"]
    if not present:
        return None
    raw = present[0] or ""
    if not IDEMPOTENCY_KEY_PATTERN.fullmatch(raw):
        raise ApiError(400, "invalid_idempotency_key",
                       f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} visible ASCII characters.")
    return raw
