"""cdk-nag AwsSolutions findings we reviewed and accept, each with its reason."""

from __future__ import annotations

from cdk_nag import NagPackSuppression, NagSuppressions

STACK_WIDE = [
    NagPackSuppression(id="AwsSolutions-IAM4", reason=(
        "AWSLambdaBasicExecutionRole (CloudWatch Logs only) and API Gateway's "
        "AmazonAPIGatewayPushToCloudWatchLogs are AWS's scoped managed policies for writing logs.")),
    NagPackSuppression(id="AwsSolutions-IAM5", reason=(
        "Wildcards are object-key prefixes (incoming/*, models/current/*, training-data/*), the "
        "training-job name prefix glaucoma-*, X-Ray and ecr:GetAuthorizationToken/cloudwatch:PutMetricData, "
        "which have no resource-level permissions (PutMetricData is limited to SageMaker's namespace).")),
    NagPackSuppression(id="AwsSolutions-APIG4", reason=(
        "Callers authenticate with an API key tied to a usage plan (per-clinic throttling and quota); "
        "clinics are machine clients without user identities. Use IAM or Cognito when per-user identity "
        "is needed.")),
    NagPackSuppression(id="AwsSolutions-COG4", reason="API-key authentication chosen; see AwsSolutions-APIG4."),
    NagPackSuppression(id="AwsSolutions-APIG3", reason=(
        "A WAF web ACL costs from ~$5/month plus per-request fees; the API is throttled by usage plan. "
        "Attach an AWS WAF web ACL for production traffic.")),
]


def suppress_reviewed_findings(stack) -> None:
    NagSuppressions.add_stack_suppressions(stack, STACK_WIDE, apply_to_nested_stacks=True)
    NagSuppressions.add_resource_suppressions(stack.node.find_child("AccessLogs"), [NagPackSuppression(
        id="AwsSolutions-S1", reason="This is the server-access-log bucket; logging it into itself would loop.")])
    NagSuppressions.add_resource_suppressions(stack.dead_letter_queue, [NagPackSuppression(
        id="AwsSolutions-SQS3", reason="This queue is the dead-letter queue.")])
