"""The container-image Lambda functions: the S3/SQS consumer and the API.

Both (and the retraining functions) run one image, functions/Dockerfile, with
the handler picked by the image's CMD. Their environment variables are those of
functions/screening/config.py.
"""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra import grants
from infra.queueing import Queueing
from infra.settings import DeploymentSettings
from infra.storage import Storage
from screening import resources

ROOT = Path(__file__).resolve().parent.parent
# What the image builds need; the rest of the checkout (venv, tests, cdk.out) stays out.
ASSET_EXCLUDES = [".venv", ".git", "cdk.out", "node_modules", "tests", "bench", "runs", "**/__pycache__",
                  ".pytest_cache", "models/report", "samples", "*.md"]
FUNCTIONS_DOCKERFILE = "functions/Dockerfile"


class ImageFunctionFactory:
    """Lambda functions from the one functions image, with their log groups and shared environment."""

    def __init__(self, settings: DeploymentSettings, environment: dict[str, str]) -> None:
        self.environment = environment
        arm = settings.architecture == "arm64"
        self.architecture = lambda_.Architecture.ARM_64 if arm else lambda_.Architecture.X86_64
        self.platform = ecr_assets.Platform.LINUX_ARM64 if arm else ecr_assets.Platform.LINUX_AMD64

    def create(self, scope: Construct, construct_id: str, handler: str, memory_mb: int, timeout_seconds: int,
               description: str, reserved_concurrency: int = 0,
               extra_env: dict[str, str] | None = None) -> lambda_.DockerImageFunction:
        log_group = logs.LogGroup(scope, f"{construct_id}Logs", retention=logs.RetentionDays.ONE_MONTH,
                                  removal_policy=cdk.RemovalPolicy.DESTROY)
        return lambda_.DockerImageFunction(
            scope, construct_id, description=description,
            code=lambda_.DockerImageCode.from_image_asset(
                str(ROOT), file=FUNCTIONS_DOCKERFILE, cmd=[handler], platform=self.platform,
                exclude=ASSET_EXCLUDES),
            architecture=self.architecture, memory_size=memory_mb,
            timeout=cdk.Duration.seconds(timeout_seconds),
            reserved_concurrent_executions=reserved_concurrency or None,
            environment={**self.environment, **(extra_env or {})}, log_group=log_group,
            tracing=lambda_.Tracing.ACTIVE)


class ScreeningFunctions(Construct):
    def __init__(self, scope: Construct, construct_id: str, settings: DeploymentSettings, storage: Storage,
                 queueing: Queueing, cors_origin: str) -> None:
        super().__init__(scope, construct_id)
        self.factory = ImageFunctionFactory(settings, {
            "RESULTS_TABLE": storage.table.table_name,
            "IMAGE_BUCKET": storage.image_bucket.bucket_name,
            "MODEL_BUCKET": storage.model_bucket.bucket_name,
            "QUEUE_URL": queueing.queue.queue_url,
            "DEAD_LETTER_QUEUE_URL": queueing.dead_letter_queue.queue_url,
            "POWERTOOLS_SERVICE_NAME": resources.SERVICE_NAME,
            "POWERTOOLS_METRICS_NAMESPACE": resources.METRICS_NAMESPACE,
            "POWERTOOLS_LOG_LEVEL": "INFO",
            # How often a warm function re-reads the registry's pointer (a promotion's reach).
            "MODEL_REFRESH_SECONDS": str(settings.model_refresh_seconds),
        })
        self.consumer = self.factory.create(
            self, "ConsumerFunction", "handlers.sqs_consumer.handler", settings.consumer_memory_mb,
            resources.CONSUMER_TIMEOUT_SECONDS, "S3 incoming/ images via SQS -> screening records")
        # Throttled here, not with reserved concurrency: the poller stops at this many concurrent
        # invocations instead of receiving messages that Lambda then throttles towards the DLQ.
        self.consumer.add_event_source(sources.SqsEventSource(
            queueing.queue, batch_size=resources.SQS_BATCH_SIZE,
            max_batching_window=cdk.Duration.seconds(resources.SQS_BATCHING_WINDOW_SECONDS),
            max_concurrency=settings.consumer_max_concurrency, report_batch_item_failures=True))
        self.api_function = self.factory.create(
            self, "ApiFunction", "handlers.api.handler", settings.api_memory_mb, settings.api_timeout_seconds,
            "REST API: screening, results, uploads, retraining and the model registry",
            reserved_concurrency=settings.api_reserved_concurrency,
            extra_env={"CORS_ALLOW_ORIGIN": cors_origin})

        # Least privilege: read incoming/ images, read/write results, read the registry (the pointer
        # models/<condition>/current.json and the version it names, models/<condition>/<version>/).
        for fn in (self.consumer, self.api_function):
            grants.read_objects(fn, storage.image_bucket, resources.INCOMING_PREFIX)
            grants.read_objects(fn, storage.model_bucket, resources.MODEL_REGISTRY_PREFIX)
            grants.use_results_table(fn, storage.table)
        grants.delete_idempotency_records(self.api_function, storage.table)
        # The consumer stores each S3-path prediction's heatmap overlay; the API serves it.
        grants.write_objects(self.consumer, storage.image_bucket, resources.RESULTS_PREFIX)
        grants.read_objects(self.api_function, storage.image_bucket, resources.RESULTS_PREFIX)
        # Presigned upload URLs are signed with the API function's role.
        grants.write_objects(self.api_function, storage.image_bucket, resources.INCOMING_PREFIX)
        queueing.queue.grant(self.api_function, "sqs:GetQueueAttributes")
        queueing.dead_letter_queue.grant(self.api_function, "sqs:GetQueueAttributes")

    @property
    def all(self) -> dict[str, object]:
        return {"API": self.api_function, "consumer": self.consumer}
