"""Screening one or many images: decode, check, run the model once per batch, record.

Both the API handler and the SQS consumer are thin wrappers around this.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np
from aws_lambda_powertools import Logger

from screening import framing, heatmap
from screening.config import Settings
from screening.inference import GlaucomaModel
from screening.preprocessing import ImageInfo, ImageRejected, preprocess_bytes
from screening.records import ResultStore


logger = Logger(child=True)
# What a record may carry from its request: S3 keys are at most 1,024 bytes, so they fit whole;
# the bound keeps any item far below DynamoDB's 400 KB whatever a client sends.
MAX_SOURCE_VALUE_CHARS = 1024


def bounded_source(source: dict) -> dict:
    """The request's provenance with every string cut to MAX_SOURCE_VALUE_CHARS."""
    return {k: v[:MAX_SOURCE_VALUE_CHARS] if isinstance(v, str) else v for k, v in source.items()}


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


@dataclass
class ScreeningRequest:
    """One image to screen, with where it came from (stored with its record)."""

    data: bytes
    record_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    source: dict = field(default_factory=dict)
    received_at: str = field(default_factory=utc_now)
    started: float = field(default_factory=time.perf_counter)


@dataclass
class ScreeningResult:
    record: dict
    model_input: np.ndarray | None = None
    cam: np.ndarray | None = None
    error: BaseException | None = None  # set when this image failed (not stored; retry it)
    stored: bool | None = None  # False: a record with this id existed already

    @property
    def rejected(self) -> bool:
        return self.record["status"] == "rejected"

    @property
    def failed(self) -> bool:
        return self.record["status"] == "failed"


class ScreeningService:
    def __init__(self, model: GlaucomaModel, store: ResultStore, settings: Settings) -> None:
        self.model = model
        self.store = store
        self.settings = settings

    def screen(self, requests: list[ScreeningRequest]) -> list[ScreeningResult]:
        """Screen a batch; each image's decode and model call is isolated from the others.

        A bad image becomes a `rejected` result; an image whose processing failed in a way
        that may pass on a retry (memory, a model fault) becomes a `failed` result that is
        never stored. The accepted images share one model call; if it fails, each is run
        alone so that one tensor cannot sink its batch-mates.
        """
        model = self.model  # one model for the whole batch, even if a refresh swaps it meanwhile
        results: list[ScreeningResult | None] = [None] * len(requests)
        accepted: list[tuple[int, np.ndarray, ImageInfo]] = []
        flags_by_index: dict[int, list[str]] = {}
        framing_by_index: dict[int, dict] = {}
        for i, request in enumerate(requests):
            try:
                tensor, info = preprocess_bytes(request.data, size=model.card.input_size,
                                                max_pixels=self.settings.max_image_pixels,
                                                max_bytes=self.settings.max_image_bytes)
                # the quality gate, and the disc crop of a full-field photograph (raises ImageRejected)
                framed = framing.frame(tensor, info, request.data, model.card.extras.get("input_framing", ""),
                                       model.card.input_size, self.settings.max_image_pixels,
                                       self.settings.max_image_bytes)
                flags_by_index[i], framing_by_index[i] = framed.flags, framed.fields
                accepted.append((i, framed.tensor, info))
            except ImageRejected as exc:
                results[i] = ScreeningResult(self._rejected_record(request, exc.reason, exc.message, model))
            except MemoryError as exc:
                results[i] = self._failed(request, "preprocessing", exc)
            except Exception as exc:  # a decoder bug on these bytes: deterministic, so reject it
                logger.warning("unexpected decoding error", extra={"id": request.record_id,
                                                                   "error": type(exc).__name__})
                results[i] = ScreeningResult(self._rejected_record(
                    request, "undecodable", "The image could not be decoded."))
        for (i, tensor, info), prediction in zip(accepted, self._predict_isolated(model, accepted)):
            request = requests[i]
            if isinstance(prediction, Exception):
                results[i] = self._failed(request, "model", prediction)
                continue
            record = self._base_record(request, model)
            record.update(
                status="ok",
                label=prediction.label,
                probability=round(prediction.probability, 6),
                confidence=round(prediction.confidence, 6),
                threshold=model.threshold,
                quality_flags=flags_by_index[i],
                image={"format": info.format, "mode": info.mode, "width": info.width,
                       "height": info.height, "bytes": len(request.data)},
                heatmap=heatmap.grid_as_list(prediction.cam, tensor),
                condition=model.card.condition,
                **framing_by_index[i],
                latency_ms=round((time.perf_counter() - request.started) * 1000, 1),
            )
            severity = framing.severity(prediction.probability, model.card.extras)
            if severity is not None:
                record["severity"] = severity
            results[i] = ScreeningResult(record, model_input=tensor, cam=prediction.cam)
        return [r for r in results if r is not None]

    def _predict_isolated(self, model: GlaucomaModel, accepted: list[tuple[int, np.ndarray, ImageInfo]]) -> list:
        """One model call for all; on failure one call per image, each failure its own."""
        if not accepted:
            return []
        try:
            return list(model.predict(np.stack([tensor for _, tensor, _ in accepted])))
        except Exception as exc:
            if len(accepted) == 1:
                return [exc]
            logger.warning("batched inference failed; running images one by one",
                           extra={"images": len(accepted), "error": type(exc).__name__})
        outcomes: list = []
        for _, tensor, _ in accepted:
            try:
                outcomes.append(model.predict(tensor[np.newaxis])[0])
            except Exception as exc:
                outcomes.append(exc)
        return outcomes

    def _failed(self, request: ScreeningRequest, step: str, exc: BaseException) -> ScreeningResult:
        logger.warning("image processing failed; it alone will be retried",
                       extra={"id": request.record_id, "step": step, "error": type(exc).__name__})
        record = {"id": request.record_id, "status": "failed", "step": step}
        return ScreeningResult(record, error=exc)

    def screen_and_store(self, requests: list[ScreeningRequest],
                         store_rejections: bool = True) -> list[ScreeningResult]:
        """Screen, then store each result on its own: a failed write fails that image alone."""
        results = self.screen(requests)
        for result in results:
            if result.failed or (result.rejected and not store_rejections):
                continue
            try:
                result.stored = self.store.put_new(result.record, self.settings.result_retention_days)
            except Exception as exc:
                logger.warning("storing a result failed", extra={"id": result.record["id"],
                                                                 "error": type(exc).__name__})
                result.error = exc
        return results

    def record_rejection(self, request: ScreeningRequest, reason: str, message: str) -> dict:
        record = self._rejected_record(request, reason, message)
        self.store.put_new(record, self.settings.result_retention_days)
        return record

    def _base_record(self, request: ScreeningRequest, model: GlaucomaModel | None = None) -> dict:
        return {
            "id": request.record_id,
            **bounded_source(request.source),
            "model_version": (model or self.model).version,
            "received_at": request.received_at,
            "created_at": utc_now(),
        }

    def _rejected_record(self, request: ScreeningRequest, reason: str, message: str,
                         model: GlaucomaModel | None = None) -> dict:
        record = self._base_record(request, model)
        record.update(status="rejected", reason=reason, message=message,
                      latency_ms=round((time.perf_counter() - request.started) * 1000, 1))
        return record
