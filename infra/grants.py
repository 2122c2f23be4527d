"""Least-privilege grants spelled out action by action.

CDK's `grant_read`/`grant_write` add `s3:GetBucket*`, `s3:List*`, `s3:Abort*` and
`s3:DeleteObject*`, and `grant_read_write_data` every index (`index/*`); these
name only the actions the code calls. The remaining wildcards are object-key
prefixes, each suppressed with its reason in infra/nag.py.
"""

from __future__ import annotations

from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3

from screening import resources

RESULT_TABLE_ACTIONS = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query"]
# Powertools' idempotency (handlers/api.py) keeps its records in the results table and deletes a
# record whose request failed, so that a retry runs again.
IDEMPOTENCY_ACTIONS = ["dynamodb:DeleteItem"]


def read_objects(grantee: iam.IGrantable, bucket: s3.IBucket, prefix: str) -> None:
    """GetObject under `prefix`, and ListBucket so that a missing key answers 404, not 403
    (the code treats 404 as "no such image/model" and anything else as a fault)."""
    iam.Grant.add_to_principal(grantee=grantee, actions=["s3:GetObject", "s3:GetObjectVersion"],
                               resource_arns=[bucket.arn_for_objects(f"{prefix}*")])
    iam.Grant.add_to_principal(grantee=grantee, actions=["s3:ListBucket"], resource_arns=[bucket.bucket_arn])


def write_objects(grantee: iam.IGrantable, bucket: s3.IBucket, prefix: str) -> None:
    iam.Grant.add_to_principal(grantee=grantee, actions=["s3:PutObject", "s3:AbortMultipartUpload"],
                               resource_arns=[bucket.arn_for_objects(f"{prefix}*")])


def use_results_table(grantee: iam.IGrantable, table: dynamodb.ITable) -> None:
    """The item reads and writes of screening/records.py, on the table and its named indexes only."""
    iam.Grant.add_to_principal(grantee=grantee, actions=RESULT_TABLE_ACTIONS, resource_arns=[
        table.table_arn, *(f"{table.table_arn}/index/{name}" for name in resources.TABLE_INDEXES)])


def delete_idempotency_records(grantee: iam.IGrantable, table: dynamodb.ITable) -> None:
    """DeleteItem on the table itself (never on an index: DeleteItem has no index form)."""
    iam.Grant.add_to_principal(grantee=grantee, actions=IDEMPOTENCY_ACTIONS, resource_arns=[table.table_arn])
