"""Names and settings of the AWS resources, defined once.

The CDK stack (infra/) and the local cloud (localcloud/) both read this module,
so the local S3 bucket, queues and table are configured exactly like the
deployed ones.
"""

from __future__ import annotations

from dataclasses import dataclass

SERVICE_NAME = "glaucoma-screening"
METRICS_NAMESPACE = "GlaucomaScreening"

# S3 layout of the image bucket. Results never go under INCOMING_PREFIX (it triggers us).
INCOMING_PREFIX = "incoming/"
TRAINING_DATA_PREFIX = "training-data/"
# S3 layout of the model bucket. The registry (model_registry.py): models/<condition>/<version>/ and
# the pointer models/<condition>/current.json. Uploads for training: training-data/<condition>/uploads/.
MODEL_REGISTRY_PREFIX = "models/"
CURRENT_MODEL_PREFIX = "models/current/"  # before the registry (issue 8); no code reads it any more
CANDIDATE_MODEL_PREFIX = "models/candidates/"  # idem
TRAINING_OUTPUT_PREFIX = "training-output/"

# Retraining: the one definition of the schedule (EventBridge syntax, UTC); the CDK rule and the
# local cloud's scheduler (localcloud/schedule.py) both run this expression.
RETRAIN_SCHEDULE = "cron(0 3 ? * SUN *)"

# SQS -> Lambda event source mapping.
SQS_BATCH_SIZE = 10
SQS_BATCHING_WINDOW_SECONDS = 1
SQS_MAX_RECEIVE_COUNT = 3
CONSUMER_TIMEOUT_SECONDS = 60
QUEUE_VISIBILITY_TIMEOUT_SECONDS = 6 * CONSUMER_TIMEOUT_SECONDS  # AWS: at least 6x the function timeout
DLQ_RETENTION_DAYS = 14
API_TIMEOUT_SECONDS = 29

# DynamoDB results table.
TABLE_PARTITION_KEY = "id"
TTL_ATTRIBUTE = "expires_at"
NEWEST_FIRST_INDEX = "by_created"  # partition: record_type, sort: created_at
BY_LABEL_INDEX = "by_label"  # partition: label, sort: created_at
RECORD_TYPE = "prediction"
COUNTERS_ID = "#counters"  # one item holding counts by label; never in the indexes
RESULT_RETENTION_DAYS = 365

# API limits (API Gateway's payload limit is 10 MB; base64 costs a third of it).
MAX_API_BODY_BYTES = 7 * 1024 * 1024
MAX_BATCH_IMAGES = 16
MAX_BATCH_BYTES = 6 * 1024 * 1024
PRESIGNED_URL_SECONDS = 900
MAX_UPLOAD_BYTES = 50 * 1024 * 1024


@dataclass(frozen=True)
class ResourceNames:
    image_bucket: str
    model_bucket: str
    queue: str
    dead_letter_queue: str
    results_table: str

    @classmethod
    def for_stage(cls, stage: str, unique_suffix: str = "") -> "ResourceNames":
        """`unique_suffix` makes bucket names global-unique in AWS (account and region)."""
        suffix = f"-{unique_suffix}" if unique_suffix else ""
        prefix = f"glaucoma-{stage}"
        return cls(
            image_bucket=f"{prefix}-images{suffix}",
            model_bucket=f"{prefix}-models{suffix}",
            queue=f"{prefix}-incoming",
            dead_letter_queue=f"{prefix}-incoming-dlq",
            results_table=f"{prefix}-results",
        )


LOCAL_STAGE = "local"
