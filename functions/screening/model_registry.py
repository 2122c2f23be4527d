"""Which model serves: the bundled default, or models/current/ in the model bucket.

A retrained model lands in models/candidates/<version>/ and is copied to
models/current/ only when it measures better than the current one on the same
evaluation set (see `should_promote`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from botocore.exceptions import ClientError

from screening import resources
from screening.inference import CARD_FILE, MODEL_FILE

MODEL_FILES = (MODEL_FILE, CARD_FILE)


def fetch_current_model(s3, bucket: str, cache_dir: Path, fallback: Path) -> Path:
    """Download models/current/ to `cache_dir`; the bundled model when there is none yet."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    try:
        for name in MODEL_FILES:
            s3.download_file(bucket, resources.CURRENT_MODEL_PREFIX + name, str(cache_dir / name))
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
            return fallback
        raise
    return cache_dir


@dataclass(frozen=True)
class PromotionDecision:
    promote: bool
    reason: str


def should_promote(candidate: dict, current: dict | None, min_sensitivity: float = 0.9,
                   min_gain: float = 0.0) -> PromotionDecision:
    """Compare two model cards (model.json); better = higher test ROC AUC on the same set."""
    cand = candidate.get("metrics", {})
    if cand.get("sensitivity", 0.0) < min_sensitivity:
        return PromotionDecision(False, f"candidate sensitivity {cand.get('sensitivity')} < {min_sensitivity}")
    if current is None:
        return PromotionDecision(True, "no current model")
    cur = current.get("metrics", {})
    if candidate.get("evaluation_set") != current.get("evaluation_set"):
        return PromotionDecision(False, "models were evaluated on different sets; not comparable")
    if cand.get("roc_auc", 0.0) <= cur.get("roc_auc", 0.0) + min_gain:
        return PromotionDecision(
            False, f"candidate AUC {cand.get('roc_auc')} is not above current {cur.get('roc_auc')}")
    return PromotionDecision(True, f"AUC {cur.get('roc_auc')} -> {cand.get('roc_auc')}")


def read_card(s3, bucket: str, prefix: str) -> dict | None:
    try:
        return json.loads(s3.get_object(Bucket=bucket, Key=prefix + CARD_FILE)["Body"].read())
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
            return None
        raise


def promote(s3, bucket: str, candidate_prefix: str) -> None:
    """Copy the candidate's files over models/current/ (the card last, so readers see a whole model)."""
    for name in (MODEL_FILE, CARD_FILE):
        s3.copy_object(Bucket=bucket, Key=resources.CURRENT_MODEL_PREFIX + name,
                       CopySource={"Bucket": bucket, "Key": candidate_prefix + name})
