"""Per-container singletons: settings, AWS clients, the models, the service.

Built once, at import time inside Lambda (the init phase), lazily elsewhere so
tests can set the environment first. Every `runtime()` call (one per
invocation) lets the registry refresh the served model: at most every
MODEL_REFRESH_SECONDS it reads the condition's pointer and, when it moved,
loads the new version; the swap happens between invocations, never inside one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import boto3
from aws_lambda_powertools import Logger, Metrics
from botocore.config import Config

from screening import resources
from screening.config import Settings
from screening.inference import GlaucomaModel
from screening.model_registry import ServingModels
from screening.records import ResultStore
from screening.service import ScreeningService

logger = Logger(service=resources.SERVICE_NAME)
metrics = Metrics(namespace=resources.METRICS_NAMESPACE, service=resources.SERVICE_NAME)

# Short timeouts and SDK retries with backoff: a slow dependency fails fast and
# the message is retried by SQS, instead of the function hanging to its timeout.
# A fixed User-Agent names the service in CloudTrail, and spares botocore rebuilding its
# default one from some twenty parts for every request (0.3-0.4 ms of CPU a call).
AWS_CONFIG = Config(connect_timeout=3, read_timeout=10, retries={"max_attempts": 3, "mode": "standard"},
                    user_agent=f"{resources.SERVICE_NAME} Boto3/{boto3.__version__}")  # botocore adds its own
# Presigned PUT URLs must be SigV4 (the image bucket is encrypted); other services pick their own.
S3_CONFIG = AWS_CONFIG.merge(Config(signature_version="s3v4"))
# DynamoDB is called from one module (screening/records.py) whose requests its tests cover; the
# service validates every request anyway, and the client-side check cost 0.3-0.4 ms of CPU a write.
DYNAMODB_CONFIG = AWS_CONFIG.merge(Config(parameter_validation=False))


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    s3: object
    sqs: object
    service: ScreeningService
    models: ServingModels

    @property
    def model(self) -> GlaucomaModel:
        return self.service.model

    def service_for(self, condition: str) -> ScreeningService:
        """A service screening with `condition`'s current model (same store and settings); raises
        model_registry.UnknownCondition when no model serves it. For `?condition=` on /predict."""
        model = self.models.get(condition)
        return self.service if model is self.service.model else ScreeningService(model, self.service.store,
                                                                                 self.settings)

    def refresh(self) -> None:
        """Serve the registry's current default model (a cheap clock check between refreshes)."""
        model = self.models.get()
        if model is not self.service.model:
            logger.info("model switched", extra={"from_version": self.service.model.version,
                                                 "to_version": model.version})
            self.service.model = model


def runtime() -> Runtime:
    rt = _build_runtime()
    rt.refresh()
    return rt


@lru_cache(maxsize=1)
def _build_runtime() -> Runtime:
    settings = Settings.from_env()
    session = boto3.session.Session()
    s3 = session.client("s3", config=S3_CONFIG)
    sqs = session.client("sqs", config=AWS_CONFIG)
    dynamodb = session.client("dynamodb", config=DYNAMODB_CONFIG)
    models = ServingModels(s3, settings.model_bucket, Path(settings.model_cache_dir), Path(settings.model_dir),
                           refresh_seconds=settings.model_refresh_seconds,
                           num_threads=settings.inference_threads or None)
    model = models.get()
    logger.info("model loaded", extra={"model_version": model.version})
    store = ResultStore(settings.results_table, dynamodb)
    return Runtime(settings=settings, s3=s3, sqs=sqs, service=ScreeningService(model, store, settings),
                   models=models)


runtime.cache_clear = _build_runtime.cache_clear  # type: ignore[attr-defined]
runtime.cache_info = _build_runtime.cache_info  # type: ignore[attr-defined]


def warm_in_lambda() -> None:
    """Load the model during Lambda's init phase, never inside a request."""
    if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
        runtime()
