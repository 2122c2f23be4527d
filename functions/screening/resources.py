"""Names and settings of the AWS resources, defined once.

The CDK stack (infra/) and the local cloud (localcloud/) both read this module,
so the local S3 bucket, queues and table are configured exactly like the
deployed ones (prefixes, indexes, queue and batch settings, limits). Only the
local cloud uses fixed names (`ResourceNames`).
"""

from __future__ import annotations

from dataclasses import dataclass

SERVICE_NAME = "glaucoma-screening"
METRICS_NAMESPACE = "GlaucomaScreening"

# S3 layout of the image bucket. Results never go under INCOMING_PREFIX (it triggers us).
INCOMING_PREFIX = "incoming/"
TRAINING_DATA_PREFIX = "training-data/"
RESULTS_PREFIX = "results/"  # heatmap overlays of S3-path predictions: results/<id>/heatmap.png
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
# AWS recommends at least 5 receives on a queue feeding Lambda, so that throttled
# deliveries do not dead-letter messages; the consumer is throttled with the event
# source's maximum concurrency instead of reserved concurrency.
SQS_MAX_RECEIVE_COUNT = 5
CONSUMER_MAX_CONCURRENCY = 5  # event source mapping MaximumConcurrency (AWS minimum: 2)
CONSUMER_TIMEOUT_SECONDS = 60
QUEUE_VISIBILITY_TIMEOUT_SECONDS = 6 * CONSUMER_TIMEOUT_SECONDS  # AWS: at least 6x the function timeout
DLQ_RETENTION_DAYS = 14
API_TIMEOUT_SECONDS = 29

# DynamoDB results table.
TABLE_PARTITION_KEY = "id"
TTL_ATTRIBUTE = "expires_at"
NEWEST_FIRST_INDEX = "by_created"  # partition: record_type, sort: created_at
BY_LABEL_INDEX = "by_label"  # partition: label, sort: created_at
BY_CLINIC_INDEX = "by_clinic"  # partition: clinic, sort: created_at
BY_CLINIC_LABEL_INDEX = "by_clinic_label"  # partition: clinic_label ("<clinic>#<label>"), sort: created_at
# Every global secondary index: name -> (partition key, sort key); all string attributes,
# all projecting every attribute. The stack and the local cloud create them from this.
TABLE_INDEXES = {
    NEWEST_FIRST_INDEX: ("record_type", "created_at"),
    BY_LABEL_INDEX: ("label", "created_at"),
    BY_CLINIC_INDEX: ("clinic", "created_at"),
    BY_CLINIC_LABEL_INDEX: ("clinic_label", "created_at"),
}
RECORD_TYPE = "prediction"
COUNTERS_ID = "#counters"  # one item holding counts by label; never in the indexes
RESULT_RETENTION_DAYS = 365

# API limits. API Gateway accepts 10 MB, but its Lambda proxy integration invokes the
# function synchronously, capped at 6 MB (6,291,456 bytes) for the whole event, and
# binary bodies arrive base64-encoded (4 bytes per 3). The raw body ceiling keeps the
# encoded body plus the rest of the event (headers twice, request context) inside
# that cap, so the handler's own 413 answers before Lambda refuses the invocation.
# Anything larger goes through POST /uploads (a presigned S3 upload).
LAMBDA_SYNC_PAYLOAD_BYTES = 6 * 1024 * 1024
PROXY_EVENT_OVERHEAD_BYTES = 256 * 1024  # headers (single and multi-value), request context, JSON
MAX_API_BODY_BYTES = 4_400_000  # raw bytes; 5,866,668 once base64-encoded
MAX_BATCH_IMAGES = 16
MAX_BATCH_BYTES = MAX_API_BODY_BYTES
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
        """The local cloud's names. The deployed stack sets no names: CloudFormation generates them
        (unique per stack), so deploy -> destroy -> deploy never meets the retained ones."""
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


def base64_length(raw_bytes: int) -> int:
    return 4 * -(-raw_bytes // 3)


assert base64_length(MAX_API_BODY_BYTES) + PROXY_EVENT_OVERHEAD_BYTES <= LAMBDA_SYNC_PAYLOAD_BYTES


if __name__ == "__main__":  # the README's numbers: PYTHONPATH=functions python -m screening.resources
    print(f"raw body ceiling {MAX_API_BODY_BYTES:,} bytes, {base64_length(MAX_API_BODY_BYTES):,} base64-encoded, "
          f"{PROXY_EVENT_OVERHEAD_BYTES // 1024} KiB for the rest of the event, Lambda's synchronous cap "
          f"{LAMBDA_SYNC_PAYLOAD_BYTES:,} bytes; batch {MAX_BATCH_IMAGES} images, {MAX_BATCH_BYTES:,} bytes; "
          f"DLQ after {SQS_MAX_RECEIVE_COUNT} receives; consumer max concurrency {CONSUMER_MAX_CONCURRENCY}")
