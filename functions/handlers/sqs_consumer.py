"""SQS consumer: S3 events for incoming/ images -> result records, with partial batch failures."""

from __future__ import annotations

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from handlers.runtime import logger, metrics, runtime, warm_in_lambda
from screening.s3_pipeline import S3BatchScreener
from screening.telemetry import record_outcomes

# Report every failure item by item, even when the whole batch fails.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict, context) -> dict:
    """The whole batch goes through the model in one call; only failed messages are retried."""
    rt = runtime()
    screener = S3BatchScreener(rt.service, rt.s3, service_for=rt.service_for)
    messages = [(r["messageId"], r["body"]) for r in event.get("Records", [])]
    failures, summary, records = screener.process(messages)
    record_outcomes(metrics, records)
    logger.info("batch done", extra={"messages": len(messages), **summary.__dict__})

    def record_handler(record: SQSRecord) -> None:
        error = failures.get(record.message_id)
        if error is not None:
            raise error

    return process_partial_response(event=event, record_handler=record_handler, processor=processor,
                                    context=context)


warm_in_lambda()
