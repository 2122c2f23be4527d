"""Create the buckets, queues and table in moto exactly as the CDK stack declares them."""

from __future__ import annotations

import json
from dataclasses import dataclass

from botocore.exceptions import ClientError

from screening import resources
from screening.resources import ResourceNames


@dataclass(frozen=True)
class LocalResources:
    names: ResourceNames
    queue_url: str
    queue_arn: str
    dead_letter_queue_url: str


def _exists(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in (
        "BucketAlreadyOwnedByYou", "BucketAlreadyExists", "ResourceInUseException")


def provision(session, names: ResourceNames) -> LocalResources:
    """Idempotent: on a restarted local cloud the resources exist already."""
    s3 = session.client("s3")
    sqs = session.client("sqs")
    dynamodb = session.client("dynamodb")

    for bucket in (names.image_bucket, names.model_bucket):
        try:
            s3.create_bucket(Bucket=bucket)
        except ClientError as exc:
            if not _exists(exc):
                raise
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
        s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={
            "BlockPublicAcls": True, "IgnorePublicAcls": True,
            "BlockPublicPolicy": True, "RestrictPublicBuckets": True})

    dlq_url = sqs.create_queue(QueueName=names.dead_letter_queue, Attributes={
        "MessageRetentionPeriod": str(resources.DLQ_RETENTION_DAYS * 86400)})["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue_url = sqs.create_queue(QueueName=names.queue, Attributes={
        "VisibilityTimeout": str(resources.QUEUE_VISIBILITY_TIMEOUT_SECONDS),
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn,
                                     "maxReceiveCount": str(resources.SQS_MAX_RECEIVE_COUNT)}),
    })["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]

    s3.put_bucket_notification_configuration(Bucket=names.image_bucket, NotificationConfiguration={
        "QueueConfigurations": [{
            "QueueArn": queue_arn,
            "Events": ["s3:ObjectCreated:*"],
            "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": resources.INCOMING_PREFIX}]}},
        }]})

    try:
        create_table(dynamodb, names)
    except ClientError as exc:
        if not _exists(exc):
            raise
    dynamodb.update_time_to_live(TableName=names.results_table, TimeToLiveSpecification={
        "Enabled": True, "AttributeName": resources.TTL_ATTRIBUTE})
    return LocalResources(names=names, queue_url=queue_url, queue_arn=queue_arn, dead_letter_queue_url=dlq_url)


def create_table(dynamodb, names: ResourceNames) -> None:
    dynamodb.create_table(
        TableName=names.results_table,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"}
                              for a in (resources.TABLE_PARTITION_KEY, "record_type", "label", "created_at")],
        KeySchema=[{"AttributeName": resources.TABLE_PARTITION_KEY, "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[
            {"IndexName": resources.NEWEST_FIRST_INDEX, "Projection": {"ProjectionType": "ALL"},
             "KeySchema": [{"AttributeName": "record_type", "KeyType": "HASH"},
                           {"AttributeName": "created_at", "KeyType": "RANGE"}]},
            {"IndexName": resources.BY_LABEL_INDEX, "Projection": {"ProjectionType": "ALL"},
             "KeySchema": [{"AttributeName": "label", "KeyType": "HASH"},
                           {"AttributeName": "created_at", "KeyType": "RANGE"}]},
        ],
        SSESpecification={"Enabled": True},
    )
