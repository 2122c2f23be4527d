"""The custom CloudWatch metrics the functions emit (EMF through Powertools).

The dashboard in infra/ is built from these names, and a test checks that
every metric on it is one that the code really emits.
"""

from __future__ import annotations

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit

PREDICTIONS_BY_LABEL = {"glaucoma": "GlaucomaPredictions", "normal": "NormalPredictions"}
REJECTIONS = "Rejections"
INFERENCE_LATENCY = "ScreeningLatency"
CUSTOM_METRICS = (*PREDICTIONS_BY_LABEL.values(), REJECTIONS, INFERENCE_LATENCY)


def record_outcomes(metrics: Metrics, records: list[dict]) -> None:
    """One count per label or rejection, and each image's end-to-end latency."""
    for record in records:
        if record.get("status") == "ok":
            metrics.add_metric(name=PREDICTIONS_BY_LABEL[record["label"]], unit=MetricUnit.Count, value=1)
        else:
            metrics.add_metric(name=REJECTIONS, unit=MetricUnit.Count, value=1)
        if "latency_ms" in record:
            metrics.add_metric(name=INFERENCE_LATENCY, unit=MetricUnit.Milliseconds, value=record["latency_ms"])
