"""Retraining: the SageMaker training image and role, the start and promote functions, their triggers.

Neither function reserves concurrency (reserved concurrency comes out of an
account pool that must keep 10 unreserved; new accounts have 10 in all).
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from constructs import Construct

from infra import grants
from infra.functions import ASSET_EXCLUDES, ROOT, ImageFunctionFactory
from infra.settings import DeploymentSettings
from infra.storage import Storage
from screening import resources
from screening.retraining import JOB_NAME_PREFIX

TRAINING_DOCKERFILE = "training/Dockerfile"


class Retraining(Construct):
    def __init__(self, scope: Construct, construct_id: str, settings: DeploymentSettings, storage: Storage,
                 factory: ImageFunctionFactory) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        # SageMaker's ml.m5/ml.c5 instances are x86_64.
        self.training_image = ecr_assets.DockerImageAsset(
            self, "TrainingImage", directory=str(ROOT), file=TRAINING_DOCKERFILE,
            platform=ecr_assets.Platform.LINUX_AMD64, exclude=ASSET_EXCLUDES)
        self.training_role = iam.Role(
            self, "TrainingJobRole", assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="SageMaker training job: read training data, write model output, pull its image")
        model_bucket = storage.model_bucket
        # SageMaker lists and reads the training channels, and writes model.tar.gz and output.
        self.training_role.add_to_policy(iam.PolicyStatement(
            actions=["s3:GetObject"], resources=[model_bucket.arn_for_objects(f"{resources.TRAINING_DATA_PREFIX}*")]))
        self.training_role.add_to_policy(iam.PolicyStatement(
            actions=["s3:ListBucket"], resources=[model_bucket.bucket_arn],
            conditions={"StringLike": {"s3:prefix": [f"{resources.TRAINING_DATA_PREFIX}*"]}}))
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
            self, "RetrainFunction", "handlers.retrain.start_handler", 512, 30, "Starts a SageMaker training job",
            extra_env={"TRAINING_IMAGE_URI": self.training_image.image_uri,
                       "TRAINING_ROLE_ARN": self.training_role.role_arn,
                       "TRAINING_INSTANCE_TYPE": settings.training_instance_type})
        training_jobs = stack.format_arn(service="sagemaker", resource="training-job",
                                         resource_name=f"{JOB_NAME_PREFIX}*")
        self.retrain_function.add_to_role_policy(iam.PolicyStatement(
            actions=["sagemaker:CreateTrainingJob", "sagemaker:AddTags"], resources=[training_jobs]))
        self.retrain_function.add_to_role_policy(iam.PolicyStatement(
            actions=["iam:PassRole"], resources=[self.training_role.role_arn],
            conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}))
        events.Rule(self, "RetrainSchedule", schedule=events.Schedule.expression(settings.retrain_schedule),
                    enabled=settings.retrain_enabled, targets=[targets.LambdaFunction(self.retrain_function)])

        self.promote_function = factory.create(
            self, "PromoteFunction", "handlers.retrain.promote_handler", 1024, 120,
            "Promotes a trained model only if it measures better")
        # Reads the job's model.tar.gz, unpacks it to candidates/, copies a winner over current/.
        for prefix in (resources.TRAINING_OUTPUT_PREFIX, resources.CANDIDATE_MODEL_PREFIX,
                       resources.CURRENT_MODEL_PREFIX):
            grants.read_objects(self.promote_function, model_bucket, prefix)
        for prefix in (resources.CANDIDATE_MODEL_PREFIX, resources.CURRENT_MODEL_PREFIX):
            grants.write_objects(self.promote_function, model_bucket, prefix)
        events.Rule(self, "TrainingCompleted", event_pattern=events.EventPattern(
            source=["aws.sagemaker"], detail_type=["SageMaker Training Job State Change"],
            detail={"TrainingJobStatus": ["Completed"],
                    "TrainingJobName": [{"prefix": JOB_NAME_PREFIX}]}),
            targets=[targets.LambdaFunction(self.promote_function)])
