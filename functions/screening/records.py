"""Result records in DynamoDB.

One item per screened image. For images from S3 the id is derived from
(bucket, key, ETag), so the record doubles as the idempotency record: a
redelivered message finds it and neither runs the model nor writes again. A
conditional put inside a transaction with the label counters keeps the counts
exact under concurrent deliveries.

The heatmap (a grid of values in [0, 1] at two decimals) is stored as one
compact string field, HEATMAP_FIELD, not as a list of lists of numbers: about
270 bytes instead of ~1.4 KB, and nothing to convert number by number when a
page of records is read. Readers get the same `heatmap` lists back.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
from decimal import Decimal
from typing import Any

import numpy as np
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from screening import resources, tenancy

COUNTER_FIELDS = ("normal", "glaucoma", "rejected")
HEATMAP_FIELD = "heatmap_grid"  # "<rows>x<cols>:<base64 of one byte per cell, the value in hundredths>"


def encode_heatmap(grid: list[list[float]]) -> str:
    if not grid:
        return "0x0:"
    cells = np.asarray(grid, np.float64)
    if cells.ndim != 2 or not np.isfinite(cells).all():
        raise ValueError("a heatmap is a rectangular grid of finite numbers")
    hundredths = np.clip(np.rint(cells * 100), 0, 100).astype(np.uint8)  # round() per cell, 5x faster
    return f"{cells.shape[0]}x{cells.shape[1]}:" + base64.b64encode(hundredths.tobytes()).decode("ascii")


def decode_heatmap(text: str) -> list[list[float]]:
    shape, _, data = text.partition(":")
    rows, cols = (int(n) for n in shape.split("x"))
    cells = base64.b64decode(data)
    return [[cells[r * cols + c] / 100 for c in range(cols)] for r in range(rows)]


def compact_record(record: dict) -> dict:
    """The record as stored: the heatmap in one string field."""
    item = dict(record)
    grid = item.pop("heatmap", None)
    if isinstance(grid, list):
        item[HEATMAP_FIELD] = encode_heatmap(grid)
    return item


def expand_record(item: dict, include_heatmap: bool = True) -> dict:
    """A stored item as callers know it: `heatmap` as lists (or left out)."""
    record = from_dynamo(item)
    encoded = record.pop(HEATMAP_FIELD, None)
    if include_heatmap and isinstance(encoded, str):
        record["heatmap"] = decode_heatmap(encoded)
    elif not include_heatmap:
        record.pop("heatmap", None)
    return record


def s3_record_id(bucket: str, key: str, etag: str) -> str:
    clean_etag = etag.strip('"')
    return hashlib.sha256(f"{bucket}\n{key}\n{clean_etag}".encode()).hexdigest()[:32]


def to_dynamo(value: Any) -> Any:
    """Floats become Decimals (DynamoDB's number type); None values are dropped."""
    return json.loads(json.dumps(value), parse_float=Decimal)


def from_dynamo(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: from_dynamo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_dynamo(v) for v in value]
    return value


_SERIALIZER = TypeSerializer()
_DESERIALIZER = TypeDeserializer()


def to_attribute_values(item: dict) -> dict:
    """Python values (Decimals for numbers) in DynamoDB's wire form ({"S": ...}, {"N": ...})."""
    return {k: _SERIALIZER.serialize(v) for k, v in item.items()}


def from_attribute_values(item: dict) -> dict:
    """DynamoDB's wire form back to Python values (Decimals for numbers), as boto3's Table gives."""
    return {k: _DESERIALIZER.deserialize(v) for k, v in item.items()}


class InvalidCursor(ValueError):
    pass


def encode_cursor(key: dict | None) -> str | None:
    if not key:
        return None
    return base64.urlsafe_b64encode(json.dumps(from_dynamo(key)).encode()).decode()


def decode_cursor(cursor: str) -> dict:
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidCursor("the cursor is not one this API returned")
    if not isinstance(key, dict):
        raise InvalidCursor("the cursor is not one this API returned")
    return to_dynamo(key)


class ResultStore:
    """The results table through the plain DynamoDB client, not boto3's resource layer: the
    resource walks every request and response against the service model to convert values,
    which cost 0.3 ms of the 3.8 ms of CPU a record's write took (bench/cpu_per_request.py)."""

    def __init__(self, table_name: str, dynamodb_client) -> None:
        self.table_name = table_name
        self.client = dynamodb_client

    def get(self, record_id: str) -> dict | None:
        item = self.client.get_item(TableName=self.table_name,
                                    Key={resources.TABLE_PARTITION_KEY: {"S": record_id}},
                                    ConsistentRead=True).get("Item")
        return expand_record(from_attribute_values(item)) if item else None

    def put_new(self, record: dict, retention_days: int) -> bool:
        """Write a record unless its id exists; bump the counters in the same transaction."""
        item = compact_record(record)
        item.setdefault("record_type", resources.RECORD_TYPE)
        item.update(tenancy.index_attributes(item))  # tenancy: keys of the per-clinic indexes
        item[resources.TTL_ATTRIBUTE] = int(time.time()) + retention_days * 86400
        counter = item.get("label") if item.get("status") == "ok" else "rejected"
        dynamo_item = to_attribute_values({k: v for k, v in to_dynamo(item).items() if v is not None})
        try:
            self.client.transact_write_items(TransactItems=[
                {"Put": {"TableName": self.table_name, "Item": dynamo_item,
                         "ConditionExpression": "attribute_not_exists(#id)",
                         "ExpressionAttributeNames": {"#id": resources.TABLE_PARTITION_KEY}}},
                *({"Update": {"TableName": self.table_name,
                              "Key": {resources.TABLE_PARTITION_KEY: {"S": counter_id}},
                              "UpdateExpression": "ADD #c :one SET last_prediction_at = :t",
                              "ExpressionAttributeNames": {"#c": f"count_{counter}"},
                              "ExpressionAttributeValues": {":one": {"N": "1"},
                                                            ":t": {"S": str(item["created_at"])}}}}
                  for counter_id in tenancy.counter_ids(item)),  # tenancy: the deployment's and the clinic's
            ])
            return True
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            reasons = exc.response.get("CancellationReasons") or []
            if reasons and reasons[0].get("Code") == "ConditionalCheckFailed":
                return False
            raise

    def counters(self, clinic: str | None = None) -> dict:
        """Counts by label: the whole deployment's, or one clinic's."""
        item = self.get(tenancy.clinic_counter_id(clinic)) or {}
        counts = {name: int(item.get(f"count_{name}", 0)) for name in COUNTER_FIELDS}
        return {"counts": counts, "last_prediction_at": item.get("last_prediction_at")}

    def list_recent(self, limit: int, label: str | None = None, cursor: str | None = None,
                    clinic: str | None = None, include_heatmap: bool = False) -> tuple[list[dict], str | None]:
        """Newest first; by label when given (rejected records carry no label); one clinic's when
        given, every clinic's otherwise (an index query either way, never a scan); heatmaps on request."""
        index, key_name, key_value = tenancy.listing_query(clinic, label)
        query = {
            "TableName": self.table_name,
            "IndexName": index,
            "KeyConditionExpression": "#k = :v",
            "ExpressionAttributeNames": {"#k": key_name},
            "ExpressionAttributeValues": to_attribute_values({":v": key_value}),
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if cursor:
            start = decode_cursor(cursor)
            if set(start) != {resources.TABLE_PARTITION_KEY, key_name, "created_at"}:
                raise InvalidCursor("the cursor is not one this API returned")
            if start[key_name] != key_value:  # tenancy: another listing's (or clinic's) cursor
                raise InvalidCursor("the cursor is not one this API returned")
            query["ExclusiveStartKey"] = to_attribute_values(start)
        page = self.client.query(**query)
        items = [expand_record(from_attribute_values(i), include_heatmap) for i in page.get("Items", [])]
        last = page.get("LastEvaluatedKey")
        return items, encode_cursor(from_attribute_values(last) if last else None)
