"""A local stand-in for Lambda's SQS event source mapping.

Lambda's batch semantics, as the deployed mapping has them: up to
SQS_BATCH_SIZE messages an invocation (gathered for up to the batching
window), messages the handler reports in `batchItemFailures` stay on the queue
and come back after their visibility timeout, a handler crash fails the whole
batch, and SQS's redrive policy moves a message to the DLQ after
SQS_MAX_RECEIVE_COUNT receives. Locally a failed message becomes visible again
after `retry_delay_s` instead of the queue's 6-minute timeout, so retries and
redrive are observable in seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from localcloud.lambda_context import LambdaContext
from screening import resources

log = logging.getLogger("localcloud.poller")


def lambda_sqs_event(messages: list[dict], queue_arn: str, region: str) -> dict:
    return {"Records": [{
        "messageId": m["MessageId"],
        "receiptHandle": m["ReceiptHandle"],
        "body": m["Body"],
        "attributes": m.get("Attributes", {}),
        "messageAttributes": m.get("MessageAttributes", {}),
        "md5OfBody": m.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    } for m in messages]}


class SqsPoller:
    def __init__(self, sqs_client, queue_url: str, queue_arn: str, handler: Callable[[dict, object], dict],
                 region: str, retry_delay_s: int = 1) -> None:
        self.sqs = sqs_client
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self.handler = handler
        self.region = region
        self.retry_delay_s = retry_delay_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.invocations = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="sqs-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)

    def _receive_batch(self) -> list[dict]:
        batch: list[dict] = []
        deadline = time.monotonic() + resources.SQS_BATCHING_WINDOW_SECONDS
        while len(batch) < resources.SQS_BATCH_SIZE and not self._stop.is_set():
            wait = 1 if not batch else 0
            got = self.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=resources.SQS_BATCH_SIZE - len(batch),
                WaitTimeSeconds=wait, AttributeNames=["All"], MessageAttributeNames=["All"],
            ).get("Messages", [])
            batch.extend(got)
            if not got and (batch or time.monotonic() >= deadline):
                break
            if batch and time.monotonic() >= deadline:
                break
        return batch

    def poll_once(self) -> int:
        """Receive one batch, invoke the handler, settle each message; returns the batch size."""
        messages = self._receive_batch()
        if not messages:
            return 0
        self.invocations += 1
        event = lambda_sqs_event(messages, self.queue_arn, self.region)
        try:
            response = self.handler(event, LambdaContext.for_function(
                "consumer", timeout_s=resources.CONSUMER_TIMEOUT_SECONDS)) or {}
            failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
        except Exception:
            log.exception("consumer invocation failed; the whole batch will be retried")
            failed = {m["MessageId"] for m in messages}
        for message in messages:
            if message["MessageId"] in failed:
                self.sqs.change_message_visibility(QueueUrl=self.queue_url,
                                                   ReceiptHandle=message["ReceiptHandle"],
                                                   VisibilityTimeout=self.retry_delay_s)
            else:
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return len(messages)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:  # the poller must outlive a bad moment of the local server
                log.exception("polling failed")
                time.sleep(1)


def main() -> int:
    """The consumer process: `python -m localcloud.sqs_poller` (its settings come from the environment)."""
    import logging as _logging
    import os
    import signal

    import boto3

    _logging.basicConfig(level=_logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from handlers import sqs_consumer
    from handlers.runtime import runtime

    region = os.environ.get("AWS_REGION", "us-east-1")
    sqs = boto3.session.Session().client("sqs")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # started beside the storage process: wait for its queue
        try:
            sqs.get_queue_attributes(QueueUrl=os.environ["QUEUE_URL"], AttributeNames=["QueueArn"])
            break
        except Exception:
            time.sleep(0.1)
    runtime()  # the model, loaded once, as Lambda's init phase does
    if os.environ.get("LOCAL_METRICS_FILE"):
        from localcloud import metrics_view

        metrics_view.install()  # the consumer's EMF lines, for the page's monitoring tab
    poller = SqsPoller(sqs, os.environ["QUEUE_URL"], os.environ["QUEUE_ARN"],
                       sqs_consumer.handler, region, retry_delay_s=int(os.environ.get("LOCAL_RETRY_DELAY_S", "1")))
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    poller.start()
    stopping.wait()
    poller.stop()  # the batch in hand finishes; unsettled messages come back after their timeout
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
