"""cdk-nag AwsSolutions findings we reviewed and accept, each with its reason.

Wildcard permissions (AwsSolutions-IAM5) are never suppressed stack-wide: each
is suppressed on the one role policy that holds it, for that exact wildcard
(`applies_to`), with its own reason. A new wildcard anywhere fails cdk-nag and
tests/infra/test_iam.py.
"""

from __future__ import annotations

import aws_cdk as cdk
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import IConstruct

from screening import resources
from infra.retraining import TRAINING_UPLOADS_PATTERN
from screening.training_contract import JOB_NAME_PREFIX

STACK_WIDE = [
    NagPackSuppression(id="AwsSolutions-IAM4", reason=(
        "AWSLambdaBasicExecutionRole (CloudWatch Logs only) and API Gateway's "
        "AmazonAPIGatewayPushToCloudWatchLogs are AWS's scoped managed policies for writing logs.")),
    NagPackSuppression(id="AwsSolutions-APIG4", reason=(
        "Callers authenticate with an API key tied to a usage plan (per-clinic throttling and quota); "
        "clinics are machine clients without user identities. Use IAM or Cognito when per-user identity "
        "is needed.")),
    NagPackSuppression(id="AwsSolutions-COG4", reason="API-key authentication chosen; see AwsSolutions-APIG4."),
    NagPackSuppression(id="AwsSolutions-APIG3", reason=(
        "A WAF web ACL costs from ~$5/month plus per-request fees; the API is throttled by usage plan. "
        "Attach an AWS WAF web ACL for production traffic.")),
]

XRAY = ("Resource::*", "xray:PutTraceSegments and xray:PutTelemetryRecords (active tracing) have no "
                       "resource-level permissions; AWS documents '*' as their only resource.")
XRAY_AND_LIST_JOBS = ("Resource::*", "xray:PutTraceSegments, xray:PutTelemetryRecords (active tracing) and "
                                     "sagemaker:ListTrainingJobs (one job at a time: is one running?) have no "
                                     "resource-level permissions; AWS documents '*' as their only resource.")
TRAINING_JOBS = (
    f"Resource::arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>:training-job/{JOB_NAME_PREFIX}*",
    "Training job names are generated per run (prefix + condition + timestamp); the prefix scopes "
    "CreateTrainingJob/DescribeTrainingJob to this service's jobs.")
PREFIX_REASONS = {
    resources.INCOMING_PREFIX: "Images arrive under incoming/ with generated keys (uuid or the clinic's "
                               "file name), so the grant is the prefix, never the whole bucket.",
    resources.RESULTS_PREFIX: "Heatmap overlays of S3-path predictions go to results/<record id>/heatmap.png; "
                              "record ids are only known at run time.",
    resources.MODEL_REGISTRY_PREFIX: "The model registry: models/<condition>/<version>/ (model, card, gate, "
                                     "report) and the pointer models/<condition>/current.json; conditions and "
                                     "versions are named at run time (by training jobs and promotions).",
    TRAINING_UPLOADS_PATTERN: "Presigned PUTs of labelled training images go to "
                              "training-data/<condition>/uploads/<label>/<site>/<uuid>; only the uploads "
                              "folder of each condition, never the rest of training-data/.",
    resources.TRAINING_DATA_PREFIX: "The upload channel training-data/<condition>/uploads/ holds many images "
                                    "whose names (and conditions) are not known at deploy time.",
    resources.TRAINING_OUTPUT_PREFIX: "SageMaker writes training-output/<job>/output/model.tar.gz; the job "
                                      "name is only known at run time.",
}


def logical_id(construct: IConstruct) -> str:
    stack = cdk.Stack.of(construct)
    return stack.resolve(stack.get_logical_id(construct.node.default_child))


def objects_under(bucket: IConstruct, prefix: str) -> tuple[str, str]:
    return f"Resource::<{logical_id(bucket)}.Arn>/{prefix}*", PREFIX_REASONS[prefix]


def allow_wildcards(construct: IConstruct, *wildcards: tuple[str, str]) -> None:
    """One IAM5 suppression per (exact finding, reason) on `construct` and its default policy."""
    NagSuppressions.add_resource_suppressions(construct, [
        NagPackSuppression(id="AwsSolutions-IAM5", reason=reason, applies_to=[finding])
        for finding, reason in wildcards], apply_to_children=True)


def suppress_reviewed_findings(stack) -> None:
    NagSuppressions.add_stack_suppressions(stack, STACK_WIDE, apply_to_nested_stacks=True)
    storage, functions, retraining = stack.storage, stack.functions, stack.retraining
    images, models = storage.image_bucket, storage.model_bucket

    allow_wildcards(functions.consumer.role, XRAY, objects_under(images, resources.INCOMING_PREFIX),
                    objects_under(images, resources.RESULTS_PREFIX),
                    objects_under(models, resources.MODEL_REGISTRY_PREFIX))
    allow_wildcards(functions.api_function.role, XRAY_AND_LIST_JOBS, TRAINING_JOBS,
                    objects_under(images, resources.INCOMING_PREFIX), objects_under(images, resources.RESULTS_PREFIX),
                    objects_under(models, resources.MODEL_REGISTRY_PREFIX),
                    objects_under(models, TRAINING_UPLOADS_PATTERN))
    allow_wildcards(retraining.retrain_function.role, XRAY_AND_LIST_JOBS, TRAINING_JOBS,
                    objects_under(models, resources.MODEL_REGISTRY_PREFIX))
    allow_wildcards(retraining.promote_function.role, XRAY,
                    *(objects_under(models, p) for p in (resources.TRAINING_OUTPUT_PREFIX,
                                                         resources.MODEL_REGISTRY_PREFIX)))
    allow_wildcards(
        retraining.training_role,
        objects_under(models, resources.TRAINING_DATA_PREFIX),
        objects_under(models, resources.MODEL_REGISTRY_PREFIX),
        objects_under(models, resources.TRAINING_OUTPUT_PREFIX),
        ("Resource::*", "ecr:GetAuthorizationToken and cloudwatch:PutMetricData have no resource-level "
                        "permissions; PutMetricData is limited to SageMaker's namespaces by a condition."),
        ("Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:/aws/sagemaker/TrainingJobs*",
         "SageMaker writes each job's logs to streams of /aws/sagemaker/TrainingJobs named per job."))

    suppress_page_deployment(stack)

    NagSuppressions.add_resource_suppressions(storage.access_logs, [NagPackSuppression(
        id="AwsSolutions-S1", reason="This is the server-access-log bucket; logging it into itself would loop.")])
    NagSuppressions.add_resource_suppressions(stack.queueing.dead_letter_queue, [NagPackSuppression(
        id="AwsSolutions-SQS3", reason="This queue is the dead-letter queue.")])
    web_findings = [
        NagPackSuppression(id="AwsSolutions-CFR1", reason=(
            "Clinics may be anywhere; the page is static and every API call needs a clinic's API key.")),
        NagPackSuppression(id="AwsSolutions-CFR2", reason=(
            "The page is static files; WAF (~$5/month plus requests) belongs in front of the API first "
            "(see AwsSolutions-APIG3).")),
    ]
    if not stack.settings.web_domain_name:
        web_findings.append(NagPackSuppression(id="AwsSolutions-CFR4", reason=(
            "Without a custom domain CloudFront serves its own *.cloudfront.net certificate, whose security "
            "policy cannot be raised; set web_domain_name and web_certificate_arn for TLSv1.2_2021.")))
    NagSuppressions.add_resource_suppressions(stack.web.distribution, web_findings)


DEPLOYMENT_HANDLER_PREFIX = "Custom::CDKBucketDeployment"  # CDK's one handler for every BucketDeployment


def suppress_page_deployment(stack) -> None:
    """The web page's upload (aws_s3_deployment): CDK's own handler, its grants written by CDK.

    It runs only while CloudFormation deploys, copying the page from CDK's asset bucket into
    the web bucket (and deleting files the page no longer has)."""
    web_bucket = stack.web.bucket
    handlers = [c for c in stack.node.children if c.node.id.startswith(DEPLOYMENT_HANDLER_PREFIX)]
    assets = "Resource::arn:<AWS::Partition>:s3:::cdk-hnb659fds-assets-<AWS::AccountId>-<AWS::Region>/*"
    for handler in handlers:
        NagSuppressions.add_resource_suppressions(handler, [NagPackSuppression(
            id="AwsSolutions-L1", reason=(
                "CDK's BucketDeployment handler: CDK pins its Python runtime and raises it with aws-cdk-lib; "
                "it runs only during deploys."))], apply_to_children=True)
        allow_wildcards(
            handler,
            ("Action::s3:GetObject*", "CDK's BucketDeployment reads the page's zip from CDK's asset bucket "
                                      "(grant_read: GetObject, GetObjectVersion...) and the web bucket's objects."),
            ("Action::s3:GetBucket*", "CDK's BucketDeployment: grant_read's bucket reads (location, versioning) on "
                                      "CDK's asset bucket and the web bucket only."),
            ("Action::s3:List*", "CDK's BucketDeployment lists CDK's asset bucket and the web bucket to sync "
                                 "(aws s3 sync) and prune removed files."),
            ("Action::s3:DeleteObject*", "CDK's BucketDeployment prunes files the page no longer has; only in "
                                         "the web bucket, which holds nothing but the page."),
            ("Action::s3:Abort*", "CDK's BucketDeployment aborts its own failed multipart uploads; only in the "
                                  "web bucket, which holds nothing but the page."),
            (f"Resource::<{logical_id(web_bucket)}.Arn>/*", "The web bucket holds only the deployed page: "
                                                           "BucketDeployment replaces its files."),
            (assets, "CDK's bootstrap asset bucket: the handler reads the page's zip, whose key is a content "
                     "hash known only at synth."))
