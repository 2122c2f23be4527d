"""Screening one or many images: decode, check, run the model once per batch, record.

Both the API handler and the SQS consumer are thin wrappers around this.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np

from screening import heatmap
from screening.config import Settings
from screening.inference import GlaucomaModel
from screening.preprocessing import ImageInfo, ImageRejected, preprocess_bytes
from screening.quality import quality_flags
from screening.records import ResultStore


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

    @property
    def rejected(self) -> bool:
        return self.record["status"] == "rejected"


class ScreeningService:
    def __init__(self, model: GlaucomaModel, store: ResultStore, settings: Settings) -> None:
        self.model = model
        self.store = store
        self.settings = settings

    def screen(self, requests: list[ScreeningRequest]) -> list[ScreeningResult]:
        """Screen a batch: bad images become `rejected` results, the rest share one model call."""
        model = self.model  # one model for the whole batch, even if a refresh swaps it meanwhile
        results: list[ScreeningResult | None] = [None] * len(requests)
        accepted: list[tuple[int, np.ndarray, ImageInfo]] = []
        for i, request in enumerate(requests):
            try:
                tensor, info = preprocess_bytes(request.data, size=model.card.input_size,
                                                max_pixels=self.settings.max_image_pixels,
                                                max_bytes=self.settings.max_image_bytes)
                accepted.append((i, tensor, info))
            except ImageRejected as exc:
                results[i] = ScreeningResult(self._rejected_record(request, exc.reason, exc.message, model))
        if accepted:
            predictions = model.predict(np.stack([tensor for _, tensor, _ in accepted]))
            for (i, tensor, info), prediction in zip(accepted, predictions):
                record = self._base_record(requests[i], model)
                record.update(
                    status="ok",
                    label=prediction.label,
                    probability=round(prediction.probability, 6),
                    confidence=round(prediction.confidence, 6),
                    threshold=model.threshold,
                    quality_flags=quality_flags(tensor, info),
                    image={"format": info.format, "mode": info.mode, "width": info.width,
                           "height": info.height, "bytes": len(requests[i].data)},
                    heatmap=heatmap.grid_as_list(prediction.cam),
                    latency_ms=round((time.perf_counter() - requests[i].started) * 1000, 1),
                )
                results[i] = ScreeningResult(record, model_input=tensor, cam=prediction.cam)
        return [r for r in results if r is not None]

    def screen_and_store(self, requests: list[ScreeningRequest],
                         store_rejections: bool = True) -> list[ScreeningResult]:
        results = self.screen(requests)
        for result in results:
            if store_rejections or not result.rejected:
                self.store.put_new(result.record, self.settings.result_retention_days)
        return results

    def record_rejection(self, request: ScreeningRequest, reason: str, message: str) -> dict:
        record = self._rejected_record(request, reason, message)
        self.store.put_new(record, self.settings.result_retention_days)
        return record

    def _base_record(self, request: ScreeningRequest, model: GlaucomaModel | None = None) -> dict:
        return {
            "id": request.record_id,
            **request.source,
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
