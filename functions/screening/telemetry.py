"""The custom CloudWatch metrics the functions emit (EMF through Powertools).

The dashboard in infra/ is built from these names, and a test checks that
every metric on it is one that the code really emits.
"""

from __future__ import annotations

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit

PREDICTIONS_BY_LABEL = {"glaucoma": "GlaucomaPredictions", "normal": "NormalPredictions",
                        "cataract": "CataractPredictions"}
REJECTIONS = "Rejections"
INFERENCE_LATENCY = "ScreeningLatency"
API_LATENCY = "ApiLatency"
CLIENT_ERRORS = "ClientErrors"
COLD_START = "ColdStart"  # emitted by Powertools' capture_cold_start_metric
# Dimensions: Powertools adds `service` to every metric; the cold-start metric also
# carries `function_name`.
SERVICE_DIMENSION = "service"
COLD_START_DIMENSIONS = ("function_name", "service")


def record_outcomes(metrics: Metrics, records: list[dict]) -> None:
    """One count per label or rejection, and each image's end-to-end latency."""
    for record in records:
        if record.get("status") == "ok":
            metrics.add_metric(name=PREDICTIONS_BY_LABEL[record["label"]], unit=MetricUnit.Count, value=1)
        else:
            metrics.add_metric(name=REJECTIONS, unit=MetricUnit.Count, value=1)
        if "latency_ms" in record:
            metrics.add_metric(name=INFERENCE_LATENCY, unit=MetricUnit.Milliseconds, value=record["latency_ms"])
