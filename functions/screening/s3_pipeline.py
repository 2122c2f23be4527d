"""The S3 path: a batch of SQS messages (S3 events) -> one result record per image.

Failure policy, so nothing is lost and nothing storms:
- a bad image (or an object deleted before we read it) gets a `rejected`
  record: the message succeeds and is never retried;
- a transient fault (throttling, timeouts, DynamoDB or S3 errors) fails only
  that message; SQS redelivers it and after SQS_MAX_RECEIVE_COUNT (5) receives moves it to the DLQ;
- a message that is not an S3 event fails too, so it ends in the DLQ where a
  person can read it;
- a redelivered message whose record exists is acknowledged without running
  the model again (idempotent per bucket, key and ETag);
- every per-image step (read, decode, model, record) is isolated: an image
  that fails fails only the message that named it, never its batch-mates;
- folder markers (`incoming/x/`) are skipped: no record, no count.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from screening import heatmap, tenancy
from screening.records import s3_record_id
from screening.s3_events import MalformedEvent, S3ObjectRef, objects_in_message
from screening.service import ScreeningRequest, ScreeningResult, ScreeningService

MISSING_OBJECT_CODES = {"NoSuchKey", "404", "NoSuchVersion", "PreconditionFailed", "412"}
logger = Logger(child=True)


class TransientFailure(RuntimeError):
    """Retry this message later."""


@dataclass
class BatchSummary:
    screened: int = 0
    rejected: int = 0
    duplicates: int = 0
    failed_messages: int = 0


# The S3 path's condition: the object's user metadata `condition` (x-amz-meta-condition on the PUT);
# without it, the default condition (glaucoma).
CONDITION_METADATA = "condition"


class S3BatchScreener:
    def __init__(self, service: ScreeningService, s3_client, service_for=None) -> None:
        self.service = service
        self.s3 = s3_client
        self.service_for = service_for  # condition -> ScreeningService (runtime().service_for)

    def process(self, messages: list[tuple[str, str]]
                ) -> tuple[dict[str, Exception], BatchSummary, list[dict]]:
        """[(message_id, body)] -> ({message_id: error} to retry, summary, records written)."""
        failures: dict[str, Exception] = {}
        written_records: list[dict] = []
        summary = BatchSummary()
        pending: list[tuple[str, ScreeningRequest]] = []
        for message_id, body in messages:
            try:
                refs = objects_in_message(body)
            except MalformedEvent as exc:
                logger.warning("malformed message sent towards the DLQ", extra={"message_id": message_id,
                                                                               "reason": str(exc)})
                failures[message_id] = exc
                continue
            except Exception as exc:  # a parser fault on this body must not fail its batch-mates
                logger.exception("unreadable message", extra={"message_id": message_id})
                failures[message_id] = exc
                continue
            for ref in refs:
                try:
                    request = self._fetch(ref)
                except Exception as exc:  # TransientFailure, or anything unforeseen: this message only
                    failures[message_id] = exc
                    continue
                if request is None:
                    summary.duplicates += 1
                    continue
                if isinstance(request, dict):  # recorded a rejection without reading the image
                    summary.rejected += 1
                    continue
                pending.append((message_id, request))

        pending = [(m, r) for m, r in pending if m not in failures]
        results = self._screen_isolated([request for _, request in pending])
        for (message_id, _), result in zip(pending, results):
            if result.failed:
                failures[message_id] = TransientFailure(f"screening failed at {result.record['step']}: "
                                                        f"{type(result.error).__name__}")
                continue
            try:
                written = self.service.store.put_new(result.record,
                                                     self.service.settings.result_retention_days)
            except (ClientError, BotoCoreError) as exc:
                failures[message_id] = TransientFailure(f"storing the result failed: {exc}")
                continue
            except Exception as exc:
                failures[message_id] = exc
                continue
            if not written:
                summary.duplicates += 1
                continue
            written_records.append(result.record)
            if result.rejected:
                summary.rejected += 1
            else:
                summary.screened += 1
                self._store_overlay(result)
        summary.failed_messages = len(failures)
        return failures, summary, written_records

    def _store_overlay(self, result) -> None:
        """The heatmap overlay beside the record (results/<id>/heatmap.png); best effort."""
        try:
            heatmap.store_overlay(self.s3, result.record["bucket"], result.record["id"],
                                  heatmap.overlay_png(result.model_input, result.cam))
        except (ClientError, BotoCoreError) as exc:
            logger.warning("heatmap overlay not stored", extra={"record_id": result.record["id"],
                                                                "reason": str(exc)})

    def _screen_isolated(self, requests: list[ScreeningRequest]) -> list[ScreeningResult]:
        """The service isolates images itself; should it still raise, fail each image alone."""
        if not requests:
            return []
        if self.service_for is not None and any("condition" in r.source for r in requests):
            return self._screen_by_condition(requests)
        try:
            return self.service.screen(requests)
        except Exception:
            logger.exception("screening the batch raised; screening image by image")
        results = []
        for request in requests:
            try:
                [result] = self.service.screen([request])
            except Exception as exc:
                result = ScreeningResult({"id": request.record_id, "status": "failed", "step": "screen"},
                                         error=exc)
            results.append(result)
        return results

    def _screen_by_condition(self, requests: list[ScreeningRequest]) -> list[ScreeningResult]:
        """Each condition's images with its own model; a condition no model serves is a rejection."""
        results: list[ScreeningResult | None] = [None] * len(requests)
        groups: dict[str, list[int]] = {}
        for i, request in enumerate(requests):
            groups.setdefault(request.source.get("condition", ""), []).append(i)
        for condition, indices in groups.items():
            try:
                service = self.service_for(condition) if condition else self.service
            except Exception:  # UnknownCondition (or a model that cannot load): reject, never retry
                for i in indices:
                    results[i] = ScreeningResult(self.service._rejected_record(
                        requests[i], "unknown_condition", f"No model serves condition {condition!r}."))
                continue
            for i, result in zip(indices, S3BatchScreener(service, self.s3)._screen_isolated(
                    [requests[i] for i in indices])):
                results[i] = result
        return [r for r in results if r is not None]

    def _fetch(self, ref: S3ObjectRef) -> ScreeningRequest | dict | None:
        """The object's bytes as a request; None if already recorded; a dict if rejected here."""
        record_id = s3_record_id(ref.bucket, ref.key, ref.etag)
        source = {"source": "s3", "bucket": ref.bucket, "key": ref.key, "etag": ref.etag,
                  "version_id": ref.version_id, "event_time": ref.event_time}
        clinic = tenancy.clinic_of_key(ref.key, self.service.settings.api_key_clinics)
        if clinic:  # tenancy: uploads of a clinic lie under incoming/<clinic>/
            source["clinic"] = clinic
        try:
            if self.service.store.get(record_id) is not None:
                return None
            request = ScreeningRequest(data=b"", record_id=record_id, source=source)
            max_bytes = self.service.settings.max_image_bytes
            if ref.size is not None and ref.size > max_bytes:
                return self.service.record_rejection(
                    request, "too_large", f"The image is {ref.size} bytes; the limit is {max_bytes} bytes.")
            get_args = {"Bucket": ref.bucket, "Key": ref.key}
            if ref.version_id:
                get_args["VersionId"] = ref.version_id
            elif ref.etag:
                get_args["IfMatch"] = ref.etag
            try:
                response = self.s3.get_object(**get_args)
                if response.get("ContentLength", 0) > max_bytes:  # the event's size may be absent
                    response["Body"].close()
                    return self.service.record_rejection(
                        request, "too_large",
                        f"The image is {response['ContentLength']} bytes; the limit is {max_bytes} bytes.")
                request.data = response["Body"].read()
                condition = (response.get("Metadata") or {}).get(CONDITION_METADATA)
                if condition:
                    request.source["condition"] = condition[:100]
                request.source["version_id"] = ref.version_id or response.get("VersionId")
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                if code not in MISSING_OBJECT_CODES:
                    raise
                return self.service.record_rejection(
                    request, "object_missing",
                    "The object was deleted or replaced before it could be read.")
            return request
        except (ClientError, BotoCoreError) as exc:
            raise TransientFailure(f"reading s3://{ref.bucket}/{ref.key} failed: {exc}") from exc
