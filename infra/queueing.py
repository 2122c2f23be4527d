"""incoming/ objects -> S3 event notification -> SQS queue, with its dead-letter queue."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.storage import Storage
from screening import resources


class Queueing(Construct):
    def __init__(self, scope: Construct, construct_id: str, storage: Storage) -> None:
        super().__init__(scope, construct_id)
        self.dead_letter_queue = sqs.Queue(
            self, "DeadLetterQueue", encryption=sqs.QueueEncryption.SQS_MANAGED, enforce_ssl=True,
            retention_period=cdk.Duration.days(resources.DLQ_RETENTION_DAYS))
        self.queue = sqs.Queue(
            self, "IncomingQueue", encryption=sqs.QueueEncryption.SQS_MANAGED, enforce_ssl=True,
            visibility_timeout=cdk.Duration.seconds(resources.QUEUE_VISIBILITY_TIMEOUT_SECONDS),
            dead_letter_queue=sqs.DeadLetterQueue(queue=self.dead_letter_queue,
                                                  max_receive_count=resources.SQS_MAX_RECEIVE_COUNT))
        storage.image_bucket.add_event_notification(
            s3.EventType.OBJECT_CREATED, s3n.SqsDestination(self.queue),
            s3.NotificationKeyFilter(prefix=resources.INCOMING_PREFIX))
