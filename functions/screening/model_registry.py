"""The model registry in the model bucket, keyed by condition, and the models a function serves.

Layout (model bucket):

    models/<condition>/<version>/glaucoma.tflite, glaucoma.keras, model.json, gate.json, report/...
    models/<condition>/current.json     {"version": ..., "previous": ..., "promoted_at": ..., "reason": ...}

A version folder is written once and never changed. Promotion (and rollback) is
one PUT of the pointer object, written after the version's files, so readers
see either the old version or the new one. Serving reads the pointer, then the
model file and the card from the one version folder it names, so a model is
never paired with another version's card (or threshold).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from screening import resources
from screening.inference import CARD_FILE, MODEL_FILE, GlaucomaModel
from screening.training_contract import DEFAULT_CONDITION, GATE_FILE

MODELS_PREFIX = resources.MODEL_REGISTRY_PREFIX
POINTER_FILE = "current.json"
# What serving downloads from a version folder.
SERVING_FILES = (MODEL_FILE, CARD_FILE)
log = logging.getLogger(__name__)


class UnknownVersion(LookupError):
    pass


class UnknownCondition(LookupError):
    pass


def is_not_found(exc: Exception) -> bool:
    code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
    return code in ("404", "NoSuchKey", "NotFound")


def valid_name(name: str) -> bool:
    """Conditions and versions become S3 path segments: letters, digits, '-', '_', '.' only."""
    return bool(name) and len(name) <= 100 and name[0].isalnum() and all(
        c.isalnum() or c in "-_." for c in name)


def condition_prefix(condition: str) -> str:
    return f"{MODELS_PREFIX}{condition}/"


def version_prefix(condition: str, version: str) -> str:
    return f"{condition_prefix(condition)}{version}/"


def pointer_key(condition: str) -> str:
    return condition_prefix(condition) + POINTER_FILE


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _read_json(s3, bucket: str, key: str) -> dict | None:
    try:
        return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    except Exception as exc:  # noqa: BLE001 - botocore's ClientError, without importing botocore
        if is_not_found(exc):
            return None
        raise


def read_pointer(s3, bucket: str, condition: str) -> dict | None:
    return _read_json(s3, bucket, pointer_key(condition))


def read_card(s3, bucket: str, condition: str, version: str) -> dict | None:
    return _read_json(s3, bucket, version_prefix(condition, version) + CARD_FILE)


def register_version(s3, bucket: str, condition: str, version: str, files: dict[str, bytes]) -> str:
    """Upload a version's files (relative name -> bytes); refuses to overwrite an existing version."""
    if not (valid_name(condition) and valid_name(version)):
        raise ValueError(f"invalid condition or version name: {condition!r}, {version!r}")
    for name in SERVING_FILES:
        if name not in files:
            raise ValueError(f"version {version} lacks {name}")
    prefix = version_prefix(condition, version)
    if read_card(s3, bucket, condition, version) is not None:
        raise ValueError(f"version {version} of {condition} already exists")
    # The card last: a version folder with a card is complete.
    for name in sorted(files, key=lambda n: n == CARD_FILE):
        s3.put_object(Bucket=bucket, Key=prefix + name, Body=files[name])
    return prefix


def promote_version(s3, bucket: str, condition: str, version: str, reason: str) -> dict:
    """Point `condition` at `version` with one PUT (rollback and roll-forward alike)."""
    if read_card(s3, bucket, condition, version) is None:
        raise UnknownVersion(f"no version {version} of {condition} in the registry")
    previous = read_pointer(s3, bucket, condition)
    pointer = {"condition": condition, "version": version, "promoted_at": utc_now(), "reason": reason,
               "previous": previous.get("version") if previous else None}
    s3.put_object(Bucket=bucket, Key=pointer_key(condition), Body=json.dumps(pointer).encode(),
                  ContentType="application/json")
    return pointer


def list_versions(s3, bucket: str, condition: str) -> list[dict]:
    """Every registered version of a condition with its card metrics and gate decision, newest first."""
    versions = []
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=condition_prefix(condition), Delimiter="/"):
        for common in page.get("CommonPrefixes", []):
            version = common["Prefix"][len(condition_prefix(condition)):].rstrip("/")
            card = read_card(s3, bucket, condition, version)
            if card is None:  # incomplete upload
                continue
            gate = _read_json(s3, bucket, version_prefix(condition, version) + GATE_FILE)
            versions.append({"version": version, "created": card.get("created"),
                             "threshold": card.get("threshold"), "class_names": card.get("class_names"),
                             "metrics": card.get("metrics", {}), "decision": gate})
    versions.sort(key=lambda v: v.get("created") or "", reverse=True)
    return versions


def fetch_version(s3, bucket: str, condition: str, version: str, cache_dir: Path) -> Path:
    """Download the serving files of one version into cache_dir/<condition>/<version>/.

    Written to a temporary folder and renamed, so a half-downloaded version is never loaded.
    """
    target = Path(cache_dir) / condition / version
    if all((target / name).is_file() for name in SERVING_FILES):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=target.parent))
    try:
        for name in SERVING_FILES:
            s3.download_file(bucket, version_prefix(condition, version) + name, str(staging / name))
        try:
            os.rename(staging, target)
        except OSError:  # another process in the same container got there first
            pass
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def bundled_model_dir(model_dir: Path, condition: str) -> Path | None:
    """The model baked into the image: models/ for glaucoma, models/<condition>/ for others."""
    for candidate in ((Path(model_dir),) if condition == DEFAULT_CONDITION else ()) + (Path(model_dir) / condition,):
        if (candidate / CARD_FILE).is_file() and (candidate / MODEL_FILE).is_file():
            return candidate
    return None


@dataclass
class _Served:
    model: GlaucomaModel
    checked: float
    source: str


@dataclass
class ServingModels:
    """The models a running function serves, one per condition.

    `get(condition)` reads the registry's pointer at most every `refresh_seconds`
    (MODEL_REFRESH_SECONDS) and loads a newly promoted version without a restart.
    Until a condition has a pointer, the bundled model serves. A failed refresh
    keeps the loaded model serving and is retried after the next interval.
    """

    s3: object
    bucket: str
    cache_dir: Path
    bundled_dir: Path
    refresh_seconds: float = 60.0
    num_threads: int | None = None
    clock: Callable[[], float] = time.monotonic
    _served: dict[str, _Served] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, condition: str = DEFAULT_CONDITION) -> GlaucomaModel:
        served = self._served.get(condition)
        if served is not None and self.clock() - served.checked < self.refresh_seconds:
            return served.model
        with self._lock:
            served = self._served.get(condition)
            if served is None or self.clock() - served.checked >= self.refresh_seconds:
                served = self._refresh(condition, served)
            return served.model

    def _refresh(self, condition: str, served: _Served | None) -> _Served:
        now = self.clock()
        try:
            pointer = read_pointer(self.s3, self.bucket, condition) if self.bucket else None
            if pointer is not None:
                version = pointer["version"]
                if served is None or served.model.version != version or served.source != "registry":
                    path = fetch_version(self.s3, self.bucket, condition, version, self.cache_dir)
                    model = GlaucomaModel(path, num_threads=self.num_threads)
                    log.info("model loaded from the registry: %s %s", condition, version)
                    served = _Served(model, now, "registry")
        except Exception:  # noqa: BLE001 - keep serving what is loaded; S3 or a bad file
            if served is None and condition != DEFAULT_CONDITION:
                raise
            log.exception("model refresh failed for %s; keeping the loaded model", condition)
        if served is None:
            bundled = bundled_model_dir(self.bundled_dir, condition)
            if bundled is None:
                raise UnknownCondition(f"no model for condition {condition!r}")
            served = _Served(GlaucomaModel(bundled, num_threads=self.num_threads), now, "bundled")
        served.checked = now
        self._served[condition] = served
        return served
