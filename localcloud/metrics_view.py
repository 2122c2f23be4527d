"""The local stand-in for CloudWatch's metrics: the functions' own EMF lines, aggregated.

In Lambda, Powertools prints each flushed metric set as one EMF JSON line and
CloudWatch extracts the metrics from the log. Here `install` hooks that print and
appends every EMF line to a JSON-lines file (shared by every process of the local
cloud), and `summary` aggregates the file as the dashboard does: predictions per
minute by label, rejections and client errors per minute, latency p50/p95. The
gateway serves it at GET /local/metrics (with the API key). Metrics are emitted only
when the local cloud runs with LOCAL_METRICS=1 (POWERTOOLS_METRICS_DISABLED=false).
"""

from __future__ import annotations

import builtins
import json
import os
import tempfile
import threading
import time
from pathlib import Path

from screening import telemetry

ROUTE = "/local/metrics"
DEFAULT_FILE = Path(tempfile.gettempdir()) / f"localcloud-emf-{os.getpid()}.jsonl"  # one per process
_lock = threading.Lock()
_sink: Path | None = None


def sink_path() -> Path:
    return Path(os.environ.get("LOCAL_METRICS_FILE") or DEFAULT_FILE)


def _emf_print(*args, **kwargs) -> None:
    """Powertools' print of one EMF line: keep it for the view, and still print it as Lambda would."""
    text = " ".join(str(a) for a in args)
    if _sink is not None and text.startswith('{"_aws"'):
        with _lock, open(_sink, "a", encoding="utf-8") as out:
            out.write(text + "\n")
    builtins.print(*args, **kwargs)


def install(path: Path | None = None, fresh: bool = False) -> Path:
    """Start collecting EMF lines into `path` (default: LOCAL_METRICS_FILE or a temp file)."""
    from aws_lambda_powertools.metrics.provider.cloudwatch_emf import cloudwatch

    global _sink
    _sink = Path(path or sink_path())
    _sink.parent.mkdir(parents=True, exist_ok=True)
    if fresh and _sink.exists():
        _sink.unlink()
    cloudwatch.print = _emf_print  # the module's global `print`, looked up at call time
    return _sink


def _values(value) -> list[float]:
    return [float(v) for v in value] if isinstance(value, list) else [float(value)]


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low, high = int(rank), min(int(rank) + 1, len(ordered) - 1)
    return round(ordered[low] + (ordered[high] - ordered[low]) * (rank - low), 1)


def summary(path: Path | None = None, minutes: int = 30, now: float | None = None) -> dict:
    """Per-minute counts and latency percentiles over the last `minutes`, from the EMF lines."""
    path = Path(path or _sink or sink_path())
    now = time.time() if now is None else now
    since_ms = (now - minutes * 60) * 1000
    counters = {name: label for label, name in telemetry.PREDICTIONS_BY_LABEL.items()}
    counters.update({telemetry.REJECTIONS: "rejected", telemetry.CLIENT_ERRORS: "client_errors"})
    per_minute: dict[int, dict[str, float]] = {}
    latencies: dict[str, list[float]] = {"screening": [], "api": []}
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    for line in lines:
        try:
            emf = json.loads(line)
            stamp = float(emf["_aws"]["Timestamp"])
        except (ValueError, KeyError, TypeError):
            continue
        if stamp < since_ms:
            continue
        minute = int(stamp // 60000) * 60
        bucket = per_minute.setdefault(minute, {})
        for name, series in counters.items():
            if name in emf:
                bucket[series] = bucket.get(series, 0) + sum(_values(emf[name]))
        if telemetry.INFERENCE_LATENCY in emf:
            latencies["screening"] += _values(emf[telemetry.INFERENCE_LATENCY])
        if telemetry.API_LATENCY in emf:
            latencies["api"] += _values(emf[telemetry.API_LATENCY])
    series = ("normal", "glaucoma", "rejected", "client_errors")
    return {
        "source": "EMF lines emitted by the functions (Powertools), as CloudWatch would extract them",
        "enabled": os.environ.get("POWERTOOLS_METRICS_DISABLED", "").lower() != "true",
        "lines": len(lines),
        "window_minutes": minutes,
        "per_minute": [{"minute": m, **{s: per_minute[m].get(s, 0) for s in series}}
                       for m in sorted(per_minute)],
        "latency_ms": {kind: {"p50": percentile(v, 50), "p95": percentile(v, 95), "count": len(v)}
                       for kind, v in latencies.items()},
    }


def response(raw_query: str = "") -> tuple[int, dict[str, str], bytes]:
    """The gateway's answer for GET /local/metrics[?minutes=N]."""
    from urllib.parse import parse_qs

    raw = (parse_qs(raw_query).get("minutes") or ["30"])[-1]
    minutes = int(raw) if raw.isascii() and raw.isdigit() and 1 <= int(raw) <= 1440 else 30
    body = json.dumps(summary(minutes=minutes)).encode()
    return 200, {"Content-Type": "application/json", "Cache-Control": "no-store"}, body
