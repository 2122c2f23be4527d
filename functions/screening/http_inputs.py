"""Reading images out of API Gateway proxy requests, with a clear 4xx for every mistake."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import HTTP

from screening.preprocessing import ImageRejected

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
    """multipart/form-data parts, with the stdlib's MIME parser (no hand-written boundary code)."""
    if "boundary=" not in content_type:
        raise ApiError(400, "malformed_multipart", "The multipart content type has no boundary.")
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\nMIME-Version: 1.0\r\n\r\n" + data)
    if not message.is_multipart() or message.defects:
        raise ApiError(400, "malformed_multipart", "The multipart body could not be parsed.")
    parts = []
    for part in message.iter_parts():
        disposition = part.get("Content-Disposition", "")
        if not disposition.startswith("form-data"):
            continue
        payload = part.get_payload(decode=True)
        parts.append(UploadedFile(field=part.get_param("name", header="content-disposition") or "",
                                  filename=part.get_filename(),
                                  content_type=part.get_content_type(),
                                  data=payload if isinstance(payload, bytes) else b""))
    if not parts:
        raise ApiError(400, "malformed_multipart", "The multipart body holds no form fields.")
    return parts


def parse_json_object(data: bytes) -> dict:
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, ValueError):
        raise ApiError(400, "malformed_json", "The body is not valid JSON.")
    if not isinstance(value, dict):
        raise ApiError(400, "malformed_json", "The JSON body must be an object.")
    return value
