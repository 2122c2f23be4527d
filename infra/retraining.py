"""Retraining: the SageMaker training image and role, the start and promote functions, their triggers.

Jobs are started two ways, with the same code (screening/retraining.py
SageMakerJobs) and the same permissions: the API function serves POST /retrain
and the other retraining routes (handlers/api_retraining.py), and the retrain
function serves the EventBridge schedule. The promote function files a completed
job's model in the registry (models/<condition>/<version>/, pointer
models/<condition>/current.json). Neither reserves concurrency (reserved
concurrency comes out of an account pool that must keep 10 unreserved).
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra import grants
from infra.functions import ASSET_EXCLUDES, ROOT, ImageFunctionFactory
from infra.settings import DeploymentSettings
from infra.storage import Storage
from screening import resources
from screening.training_contract import JOB_NAME_PREFIX

TRAINING_DOCKERFILE = "training/Dockerfile"
# What a training job reads: its upload channel and the champion's model folder.
TRAINING_CHANNEL_PREFIXES = (resources.TRAINING_DATA_PREFIX, resources.MODEL_REGISTRY_PREFIX)
# training-data/<condition>/uploads/<label>/<site>/<file> (screening/retraining.py uploads_prefix)
TRAINING_UPLOADS_PATTERN = f"{resources.TRAINING_DATA_PREFIX}*/uploads/"


class Retraining(Construct):
    def __init__(self, scope: Construct, construct_id: str, settings: DeploymentSettings, storage: Storage,
                 factory: ImageFunctionFactory, api_function: lambda_.Function) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        # SageMaker's ml.m5/ml.c5 instances are x86_64. Entry point: `python -m training.sagemaker train`.
        self.training_image = ecr_assets.DockerImageAsset(
            self, "TrainingImage", directory=str(ROOT), file=TRAINING_DOCKERFILE,
            platform=ecr_assets.Platform.LINUX_AMD64, exclude=ASSET_EXCLUDES)
        self.training_role = iam.Role(
            self, "TrainingJobRole", assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="SageMaker training job: read training data and the champion, write model output")
        model_bucket = storage.model_bucket
        # Channels: the labelled uploads (training-data/<condition>/uploads/) and the champion's
        # version folder (models/<condition>/<version>/); SageMaker lists each channel's prefix.
        self.training_role.add_to_policy(iam.PolicyStatement(
            actions=["s3:GetObject"], resources=[model_bucket.arn_for_objects(f"{prefix}*")
                                                 for prefix in TRAINING_CHANNEL_PREFIXES]))
        self.training_role.add_to_policy(iam.PolicyStatement(
            actions=["s3:ListBucket"], resources=[model_bucket.bucket_arn],
            conditions={"StringLike": {"s3:prefix": [f"{prefix}*" for prefix in TRAINING_CHANNEL_PREFIXES]}}))
        grants.write_objects(self.training_role, model_bucket, resources.TRAINING_OUTPUT_PREFIX)
        self.training_image.repository.grant_pull(self.training_role)
        self.training_role.add_to_policy(iam.PolicyStatement(
            actions=["ecr:GetAuthorizationToken"], resources=["*"]))  # this action has no resource type
        self.training_role.add_to_policy(iam.PolicyStatement(
            actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
            resources=[stack.format_arn(service="logs", resource="log-group",
                                        resource_name="/aws/sagemaker/TrainingJobs*",
                                        arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME)]))
        self.training_role.add_to_policy(iam.PolicyStatement(
            actions=["cloudwatch:PutMetricData"], resources=["*"],  # PutMetricData has no resource type
            conditions={"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}}))

        self.retrain_function = factory.create(
            self, "RetrainFunction", "handlers.retrain.start_handler", 512, 30,
            "Starts a SageMaker training job on the schedule")
        self.job_starters = (api_function, self.retrain_function)
        training_jobs = stack.format_arn(service="sagemaker", resource="training-job",
                                         resource_name=f"{JOB_NAME_PREFIX}*")
        for fn in self.job_starters:
            fn.add_environment("TRAINING_RUNNER", "sagemaker")
            fn.add_environment("TRAINING_IMAGE_URI", self.training_image.image_uri)
            fn.add_environment("TRAINING_ROLE_ARN", self.training_role.role_arn)
            fn.add_environment("TRAINING_INSTANCE_TYPE", settings.training_instance_type)
            fn.add_environment("TRAINING_MAX_RUNTIME_SECONDS", str(settings.training_max_runtime_seconds))
            fn.add_to_role_policy(iam.PolicyStatement(
                actions=["sagemaker:CreateTrainingJob", "sagemaker:DescribeTrainingJob"], resources=[training_jobs]))
            # One job at a time: SageMakerJobs.running() lists this service's running jobs.
            fn.add_to_role_policy(iam.PolicyStatement(actions=["sagemaker:ListTrainingJobs"], resources=["*"]))
            fn.add_to_role_policy(iam.PolicyStatement(
                actions=["iam:PassRole"], resources=[self.training_role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}))
        # Starting a job first registers the bundled model as the champion when the registry is empty
        # (retraining.ensure_champion): read and write models/; has_uploads lists training-data/.
        grants.read_objects(self.retrain_function, model_bucket, resources.MODEL_REGISTRY_PREFIX)
        for fn in self.job_starters:
            grants.write_objects(fn, model_bucket, resources.MODEL_REGISTRY_PREFIX)
        # POST /uploads/training: a presigned PUT under training-data/<condition>/uploads/, signed by the
        # API function's role; GET /dataset lists the uploads (ListBucket comes with read_objects).
        grants.write_objects(api_function, model_bucket, TRAINING_UPLOADS_PATTERN)
        self.retrain_function.add_environment("RETRAIN_SCHEDULE", settings.retrain_schedule)
        self.schedule = events.Rule(
            self, "RetrainSchedule", schedule=events.Schedule.expression(settings.retrain_schedule),
            enabled=settings.retrain_enabled, targets=[targets.LambdaFunction(self.retrain_function)])

        self.promote_function = factory.create(
            self, "PromoteFunction", "handlers.retrain.promote_handler", 1024, 120,
            "Files a completed training job's model in the registry; its gate decides the pointer")
        # Reads the job's training-output/<job>/output/model.tar.gz, writes the version folder and,
        # when the gate passed it, the pointer; reads cards and the pointer under models/.
        for prefix in (resources.TRAINING_OUTPUT_PREFIX, resources.MODEL_REGISTRY_PREFIX):
            grants.read_objects(self.promote_function, model_bucket, prefix)
        grants.write_objects(self.promote_function, model_bucket, resources.MODEL_REGISTRY_PREFIX)
        events.Rule(self, "TrainingCompleted", event_pattern=events.EventPattern(
            source=["aws.sagemaker"], detail_type=["SageMaker Training Job State Change"],
            detail={"TrainingJobStatus": ["Completed"],
                    "TrainingJobName": [{"prefix": JOB_NAME_PREFIX}]}),
            targets=[targets.LambdaFunction(self.promote_function)])
