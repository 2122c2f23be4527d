"""Buckets for images, models and access logs, and the results table.

No physical names: CloudFormation generates them from the stack name, so a
deploy after `cdk destroy` never collides with the retained buckets and table
of the earlier deployment. Those hold clinical images and results, so they are
retained (see the README's "Deploying to AWS").
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.settings import DeploymentSettings
from screening import resources

RETAINED = cdk.RemovalPolicy.RETAIN


class Storage(Construct):
    def __init__(self, scope: Construct, construct_id: str, settings: DeploymentSettings) -> None:
        super().__init__(scope, construct_id)
        self.access_logs = s3.Bucket(
            self, "AccessLogs", encryption=s3.BucketEncryption.S3_MANAGED, enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL, versioned=True,
            # CloudFront's standard logs need ACLs on the log bucket.
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
            lifecycle_rules=[s3.LifecycleRule(expiration=cdk.Duration.days(365),
                                              noncurrent_version_expiration=cdk.Duration.days(30))],
            removal_policy=RETAINED)
        self.image_bucket = self.private_bucket(
            "ImageBucket", "images/",
            lifecycle_rules=[s3.LifecycleRule(
                id="expire-incoming", prefix=resources.INCOMING_PREFIX,
                expiration=cdk.Duration.days(settings.image_retention_days),
                noncurrent_version_expiration=cdk.Duration.days(settings.image_retention_days))])
        self.model_bucket = self.private_bucket("ModelBucket", "models/")

        self.table = dynamodb.Table(
            self, "ResultsTable",
            partition_key=dynamodb.Attribute(name=resources.TABLE_PARTITION_KEY,
                                             type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True),
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            time_to_live_attribute=resources.TTL_ATTRIBUTE,
            removal_policy=RETAINED)
        for index, (partition, sort) in resources.TABLE_INDEXES.items():
            self.table.add_global_secondary_index(
                index_name=index,
                partition_key=dynamodb.Attribute(name=partition, type=dynamodb.AttributeType.STRING),
                sort_key=dynamodb.Attribute(name=sort, type=dynamodb.AttributeType.STRING))

    def private_bucket(self, construct_id: str, log_prefix: str, **extra) -> s3.Bucket:
        """Encrypted, versioned, TLS-only, never public, access-logged, retained."""
        return s3.Bucket(
            self, construct_id, encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True, versioned=True, block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            server_access_logs_bucket=self.access_logs, server_access_logs_prefix=log_prefix,
            removal_policy=RETAINED, **extra)
