"""S3 event notifications as they arrive in SQS message bodies."""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import unquote_plus

from screening import resources


class MalformedEvent(ValueError):
    """A message that is not an S3 event: retrying it can never help."""


@dataclass(frozen=True)
class S3ObjectRef:
    bucket: str
    key: str
    etag: str
    version_id: str | None
    size: int | None
    event_time: str | None


def is_folder_marker(key: str) -> bool:
    """`incoming/x/`: what the S3 console creates for a folder; not an image, never recorded."""
    return key.endswith("/")


def objects_in_message(body: str) -> list[S3ObjectRef]:
    """The created objects under incoming/ named by one SQS message; [] for s3:TestEvent.

    Folder markers are skipped here, so they are neither screened, recorded nor counted.
    """
    try:
        event = json.loads(body)
    except (TypeError, ValueError):
        raise MalformedEvent("the message body is not JSON")
    if not isinstance(event, dict):
        raise MalformedEvent("the message body is not a JSON object")
    if event.get("Event") == "s3:TestEvent":
        return []
    if "Records" not in event or not isinstance(event["Records"], list):
        raise MalformedEvent("the message has no S3 Records")
    refs = []
    for record in event["Records"]:
        try:
            if not str(record.get("eventName", "")).startswith("ObjectCreated"):
                continue
            s3 = record["s3"]
            key = unquote_plus(s3["object"]["key"])  # keys arrive URL-encoded, '+' for space
            if not key.startswith(resources.INCOMING_PREFIX) or is_folder_marker(key):
                continue
            refs.append(S3ObjectRef(
                bucket=s3["bucket"]["name"],
                key=key,
                etag=str(s3["object"].get("eTag", "")).strip('"'),
                version_id=s3["object"].get("versionId"),
                size=s3["object"].get("size"),
                event_time=record.get("eventTime"),
            ))
        except (KeyError, TypeError, AttributeError):
            raise MalformedEvent("an S3 record lacks its bucket or object key")
    return refs
