"""The whole system as one CDK stack.

Names and the queue, batch and table settings come from
functions/screening/resources.py, which the local cloud uses too; the
environment variables the functions read are those of
functions/screening/config.py. Settings that differ per deployment come from
CDK context (see `DeploymentSettings`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from screening import resources, telemetry
from screening.resources import ResourceNames
from screening.retraining import JOB_NAME_PREFIX

ROOT = Path(__file__).resolve().parent.parent
# What the image builds need; the rest of the checkout (venv, tests, cdk.out) stays out.
ASSET_EXCLUDES = [".venv", ".git", "cdk.out", "node_modules", "tests", "bench", "runs", "**/__pycache__",
                  ".pytest_cache", "models/report", "samples", "*.md"]


@dataclass(frozen=True)
class DeploymentSettings:
    """CDK context keys (cdk.json, or `cdk deploy -c key=value`) and their defaults."""

    stage: str = "dev"
    retrain_schedule: str = "cron(0 3 ? * SUN *)"  # EventBridge cron, UTC
    retrain_enabled: bool = True
    api_memory_mb: int = 2048
    consumer_memory_mb: int = 2048
    api_timeout_seconds: int = resources.API_TIMEOUT_SECONDS
    api_reserved_concurrency: int = 0  # 0: unreserved
    consumer_reserved_concurrency: int = 0
    architecture: str = "x86_64"  # or arm64
    alarm_email: str = ""
    image_retention_days: int = 30
    api_rate_limit: int = 20  # requests per second per API key
    api_burst_limit: int = 40
    api_quota_per_day: int = 10000
    training_instance_type: str = "ml.m5.xlarge"
    api_p99_latency_alarm_ms: int = 3000
    queue_age_alarm_seconds: int = 300

    @classmethod
    def from_context(cls, node) -> "DeploymentSettings":
        values = {}
        for f in fields(cls):
            raw = node.try_get_context(f.name)
            if raw is None:
                continue
            default = getattr(cls, f.name)
            if isinstance(default, bool):
                values[f.name] = raw if isinstance(raw, bool) else str(raw).lower() in ("1", "true", "yes")
            elif isinstance(default, int):
                values[f.name] = int(raw)
            else:
                values[f.name] = str(raw)
        return cls(**values)


class GlaucomaScreeningStack(cdk.Stack):
    def __init__(self, scope: Construct, construct_id: str, settings: DeploymentSettings, **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.settings = settings
        names = ResourceNames.for_stage(settings.stage, unique_suffix=f"{self.account}-{self.region}")
        self.names = names

        # ---- storage -------------------------------------------------------------------
        access_logs = s3.Bucket(
            self, "AccessLogs", encryption=s3.BucketEncryption.S3_MANAGED, enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL, versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
            lifecycle_rules=[s3.LifecycleRule(expiration=cdk.Duration.days(365))],
            removal_policy=cdk.RemovalPolicy.RETAIN)
        def private_bucket(construct_id: str, name: str, log_prefix: str, **extra) -> s3.Bucket:
            return s3.Bucket(
                self, construct_id, bucket_name=name, encryption=s3.BucketEncryption.S3_MANAGED,
                enforce_ssl=True, versioned=True, block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
                server_access_logs_bucket=access_logs, server_access_logs_prefix=log_prefix,
                removal_policy=cdk.RemovalPolicy.RETAIN, **extra)

        self.image_bucket = private_bucket(
            "ImageBucket", names.image_bucket, "images/",
            lifecycle_rules=[s3.LifecycleRule(
                id="expire-incoming", prefix=resources.INCOMING_PREFIX,
                expiration=cdk.Duration.days(settings.image_retention_days),
                noncurrent_version_expiration=cdk.Duration.days(settings.image_retention_days))],
            cors=[s3.CorsRule(allowed_methods=[s3.HttpMethods.PUT], allowed_origins=["*"],
                              allowed_headers=["content-type"], max_age=300)])
        self.model_bucket = private_bucket("ModelBucket", names.model_bucket, "models/")

        self.dead_letter_queue = sqs.Queue(
            self, "DeadLetterQueue", queue_name=names.dead_letter_queue,
            encryption=sqs.QueueEncryption.SQS_MANAGED, enforce_ssl=True,
            retention_period=cdk.Duration.days(resources.DLQ_RETENTION_DAYS))
        self.queue = sqs.Queue(
            self, "IncomingQueue", queue_name=names.queue,
            encryption=sqs.QueueEncryption.SQS_MANAGED, enforce_ssl=True,
            visibility_timeout=cdk.Duration.seconds(resources.QUEUE_VISIBILITY_TIMEOUT_SECONDS),
            dead_letter_queue=sqs.DeadLetterQueue(queue=self.dead_letter_queue,
                                                  max_receive_count=resources.SQS_MAX_RECEIVE_COUNT))
        self.image_bucket.add_event_notification(
            s3.EventType.OBJECT_CREATED, s3n.SqsDestination(self.queue),
            s3.NotificationKeyFilter(prefix=resources.INCOMING_PREFIX))

        self.table = dynamodb.Table(
            self, "ResultsTable", table_name=names.results_table,
            partition_key=dynamodb.Attribute(name=resources.TABLE_PARTITION_KEY,
                                             type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True),
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            time_to_live_attribute=resources.TTL_ATTRIBUTE,
            removal_policy=cdk.RemovalPolicy.RETAIN)
        for index, partition in ((resources.NEWEST_FIRST_INDEX, "record_type"),
                                 (resources.BY_LABEL_INDEX, "label")):
            self.table.add_global_secondary_index(
                index_name=index,
                partition_key=dynamodb.Attribute(name=partition, type=dynamodb.AttributeType.STRING),
                sort_key=dynamodb.Attribute(name="created_at", type=dynamodb.AttributeType.STRING))

        # ---- functions -----------------------------------------------------------------
        architecture = lambda_.Architecture.ARM_64 if settings.architecture == "arm64" else lambda_.Architecture.X86_64
        platform = (ecr_assets.Platform.LINUX_ARM64 if settings.architecture == "arm64"
                    else ecr_assets.Platform.LINUX_AMD64)
        common_env = {
            "RESULTS_TABLE": self.table.table_name,
            "IMAGE_BUCKET": self.image_bucket.bucket_name,
            "MODEL_BUCKET": self.model_bucket.bucket_name,
            "QUEUE_URL": self.queue.queue_url,
            "DEAD_LETTER_QUEUE_URL": self.dead_letter_queue.queue_url,
            "POWERTOOLS_SERVICE_NAME": resources.SERVICE_NAME,
            "POWERTOOLS_METRICS_NAMESPACE": resources.METRICS_NAMESPACE,
            "POWERTOOLS_LOG_LEVEL": "INFO",
        }

        def function(name: str, cmd: str, memory: int, timeout: int, reserved: int, description: str,
                     extra_env: dict | None = None) -> lambda_.DockerImageFunction:
            log_group = logs.LogGroup(self, f"{name}Logs", retention=logs.RetentionDays.ONE_MONTH,
                                      removal_policy=cdk.RemovalPolicy.DESTROY)
            return lambda_.DockerImageFunction(
                self, name, description=description,
                code=lambda_.DockerImageCode.from_image_asset(
                    str(ROOT), file="functions/Dockerfile", cmd=[cmd], platform=platform,
                    exclude=ASSET_EXCLUDES),
                architecture=architecture, memory_size=memory, timeout=cdk.Duration.seconds(timeout),
                reserved_concurrent_executions=reserved or None,
                environment={**common_env, **(extra_env or {})}, log_group=log_group,
                tracing=lambda_.Tracing.ACTIVE)

        self.consumer = function("ConsumerFunction", "handlers.sqs_consumer.handler",
                                 settings.consumer_memory_mb, resources.CONSUMER_TIMEOUT_SECONDS,
                                 settings.consumer_reserved_concurrency,
                                 "S3 incoming/ images via SQS -> screening records")
        self.consumer.add_event_source(sources.SqsEventSource(
            self.queue, batch_size=resources.SQS_BATCH_SIZE,
            max_batching_window=cdk.Duration.seconds(resources.SQS_BATCHING_WINDOW_SECONDS),
            report_batch_item_failures=True))
        self.api_function = function("ApiFunction", "handlers.api.handler", settings.api_memory_mb,
                                     settings.api_timeout_seconds, settings.api_reserved_concurrency,
                                     "REST API: /predict, /predictions, /status, /uploads")

        # Least privilege: read incoming/ images, read/write results, read the served model.
        self.image_bucket.grant_read(self.consumer, f"{resources.INCOMING_PREFIX}*")
        self.image_bucket.grant_read(self.api_function, f"{resources.INCOMING_PREFIX}*")
        self.image_bucket.grant_put(self.api_function, f"{resources.INCOMING_PREFIX}*")  # presigned PUTs
        for fn in (self.consumer, self.api_function):
            self.table.grant_read_write_data(fn)
            self.model_bucket.grant_read(fn, f"{resources.CURRENT_MODEL_PREFIX}*")
        self.queue.grant(self.api_function, "sqs:GetQueueAttributes")
        self.dead_letter_queue.grant(self.api_function, "sqs:GetQueueAttributes")

        # ---- retraining ----------------------------------------------------------------
        training_image = ecr_assets.DockerImageAsset(
            self, "TrainingImage", directory=str(ROOT), file="training/Dockerfile",
            platform=ecr_assets.Platform.LINUX_AMD64, exclude=ASSET_EXCLUDES)
        self.training_role = iam.Role(
            self, "TrainingJobRole", assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="SageMaker training job: read training data, write model output, pull its image")
        self.model_bucket.grant_read(self.training_role, f"{resources.TRAINING_DATA_PREFIX}*")
        self.model_bucket.grant_write(self.training_role, f"{resources.TRAINING_OUTPUT_PREFIX}*")
        training_image.repository.grant_pull(self.training_role)
        self.training_role.add_to_policy(iam.PolicyStatement(
            actions=["ecr:GetAuthorizationToken"], resources=["*"]))  # this action has no resource type
        self.training_role.add_to_policy(iam.PolicyStatement(
            actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
            resources=[self.format_arn(service="logs", resource="log-group",
                                       resource_name="/aws/sagemaker/TrainingJobs*",
                                       arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME)]))
        self.training_role.add_to_policy(iam.PolicyStatement(
            actions=["cloudwatch:PutMetricData"], resources=["*"],  # PutMetricData has no resource type
            conditions={"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}}))

        retrain_env = {"TRAINING_IMAGE_URI": training_image.image_uri,
                       "TRAINING_ROLE_ARN": self.training_role.role_arn,
                       "TRAINING_INSTANCE_TYPE": settings.training_instance_type}
        self.retrain_function = function("RetrainFunction", "handlers.retrain.start_handler", 512, 30, 1,
                                         "Starts a SageMaker training job", retrain_env)
        training_jobs = self.format_arn(service="sagemaker", resource="training-job",
                                        resource_name=f"{JOB_NAME_PREFIX}*")
        self.retrain_function.add_to_role_policy(iam.PolicyStatement(
            actions=["sagemaker:CreateTrainingJob", "sagemaker:AddTags"], resources=[training_jobs]))
        self.retrain_function.add_to_role_policy(iam.PolicyStatement(
            actions=["iam:PassRole"], resources=[self.training_role.role_arn],
            conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}))
        events.Rule(self, "RetrainSchedule", schedule=events.Schedule.expression(settings.retrain_schedule),
                    enabled=settings.retrain_enabled, targets=[targets.LambdaFunction(self.retrain_function)])

        self.promote_function = function("PromoteFunction", "handlers.retrain.promote_handler", 1024, 120, 1,
                                         "Promotes a trained model only if it measures better")
        self.model_bucket.grant_read(self.promote_function, f"{resources.TRAINING_OUTPUT_PREFIX}*")
        self.model_bucket.grant_read_write(self.promote_function, f"{resources.CANDIDATE_MODEL_PREFIX}*")
        self.model_bucket.grant_read_write(self.promote_function, f"{resources.CURRENT_MODEL_PREFIX}*")
        events.Rule(self, "TrainingCompleted", event_pattern=events.EventPattern(
            source=["aws.sagemaker"], detail_type=["SageMaker Training Job State Change"],
            detail={"TrainingJobStatus": ["Completed"],
                    "TrainingJobName": [{"prefix": JOB_NAME_PREFIX}]}),
            targets=[targets.LambdaFunction(self.promote_function)])

        # ---- API -----------------------------------------------------------------------
        access_log_group = logs.LogGroup(self, "ApiAccessLogs", retention=logs.RetentionDays.THREE_MONTHS,
                                         removal_policy=cdk.RemovalPolicy.DESTROY)
        self.api = apigw.RestApi(
            self, "Api", rest_api_name=f"glaucoma-{settings.stage}",
            description="Glaucoma screening (research and education use only)",
            binary_media_types=["image/*", "multipart/form-data", "application/octet-stream"],
            endpoint_types=[apigw.EndpointType.REGIONAL], cloud_watch_role=True,
            min_compression_size=cdk.Size.kibibytes(1),
            deploy_options=apigw.StageOptions(
                stage_name=settings.stage, tracing_enabled=True, metrics_enabled=True,
                logging_level=apigw.MethodLoggingLevel.ERROR, data_trace_enabled=False,
                access_log_destination=apigw.LogGroupLogDestination(access_log_group),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=False, http_method=True, ip=True, protocol=True, request_time=True,
                    resource_path=True, response_length=True, status=True, user=False),
                throttling_rate_limit=settings.api_rate_limit * 5,
                throttling_burst_limit=settings.api_burst_limit * 5),
            default_cors_preflight_options=apigw.CorsOptions(
                allow_origins=apigw.Cors.ALL_ORIGINS, allow_methods=["GET", "POST", "OPTIONS"],
                allow_headers=["content-type", "x-api-key"], max_age=cdk.Duration.minutes(5)),
            default_method_options=apigw.MethodOptions(api_key_required=True))
        validator = apigw.RequestValidator(self, "ParameterValidator", rest_api=self.api,
                                           validate_request_parameters=True, validate_request_body=True)
        api_integration = apigw.LambdaIntegration(self.api_function, proxy=True)
        routes = {
            ("predict", "POST"): {},
            ("predict/batch", "POST"): {},
            ("predictions", "GET"): {"method.request.querystring.limit": False,
                                     "method.request.querystring.label": False,
                                     "method.request.querystring.cursor": False},
            ("predictions/{prediction_id}", "GET"): {"method.request.path.prediction_id": True},
            ("status", "GET"): {},
            ("uploads", "POST"): {},
            ("openapi.json", "GET"): {},
        }
        for (path, method), parameters in routes.items():
            self.api.root.resource_for_path(path).add_method(
                method, api_integration, request_parameters=parameters or None, request_validator=validator)
        self.api.root.resource_for_path("retrain").add_method(
            "POST", apigw.LambdaIntegration(self.retrain_function, proxy=True), request_validator=validator)
        key = self.api.add_api_key("ClinicApiKey", api_key_name=f"glaucoma-{settings.stage}-clinic")
        plan = self.api.add_usage_plan(
            "UsagePlan", name=f"glaucoma-{settings.stage}",
            throttle=apigw.ThrottleSettings(rate_limit=settings.api_rate_limit,
                                            burst_limit=settings.api_burst_limit),
            quota=apigw.QuotaSettings(limit=settings.api_quota_per_day, period=apigw.Period.DAY))
        plan.add_api_key(key)
        plan.add_api_stage(stage=self.api.deployment_stage)

        # ---- observability ---------------------------------------------------------------
        self.alarm_topic = sns.Topic(self, "AlarmTopic", display_name="Glaucoma screening alarms",
                                     master_key=kms.Alias.from_alias_name(self, "SnsKey", "alias/aws/sns"),
                                     enforce_ssl=True)
        if settings.alarm_email:
            self.alarm_topic.add_subscription(subs.EmailSubscription(settings.alarm_email))
        self.dashboard = self._dashboard()
        self._alarms()

        for output, value in (("ApiUrl", self.api.url), ("ImageBucketName", self.image_bucket.bucket_name),
                              ("ModelBucketName", self.model_bucket.bucket_name),
                              ("ResultsTableName", self.table.table_name),
                              ("ApiKeyId", key.key_id),
                              ("DashboardUrl", f"https://{self.region}.console.aws.amazon.com/cloudwatch/home"
                                               f"?region={self.region}#dashboards:name="
                                               f"{self.dashboard.dashboard_name}")):
            cdk.CfnOutput(self, output, value=value)

    # -- helpers -----------------------------------------------------------------------------
    def custom_metric(self, name: str, statistic: str = "Sum", label: str = "") -> cw.Metric:
        """A metric the functions emit through Powertools (service dimension only)."""
        return cw.Metric(namespace=resources.METRICS_NAMESPACE, metric_name=name, statistic=statistic,
                         dimensions_map={telemetry.SERVICE_DIMENSION: resources.SERVICE_NAME},
                         period=cdk.Duration.minutes(5), label=label or name)

    def _api_metric(self, name: str, statistic: str) -> cw.Metric:
        return cw.Metric(namespace="AWS/ApiGateway", metric_name=name, statistic=statistic,
                         dimensions_map={"ApiName": self.api.rest_api_name, "Stage": self.settings.stage},
                         period=cdk.Duration.minutes(5), label=f"{name} {statistic}")

    def _dashboard(self) -> cw.Dashboard:
        functions = {"API": self.api_function, "consumer": self.consumer}
        cold_starts = [cw.Metric(namespace=resources.METRICS_NAMESPACE, metric_name=telemetry.COLD_START,
                                 statistic="Sum", period=cdk.Duration.minutes(5), label=f"cold starts {label}",
                                 dimensions_map={"function_name": fn.function_name,
                                                 telemetry.SERVICE_DIMENSION: resources.SERVICE_NAME})
                       for label, fn in functions.items()]
        predictions = [self.custom_metric(name, label=f"{label} predictions")
                       for label, name in telemetry.PREDICTIONS_BY_LABEL.items()]
        rejections = self.custom_metric(telemetry.REJECTIONS)
        rejection_rate = cw.MathExpression(
            expression="100 * r / (r + g + n)", label="rejection rate %", period=cdk.Duration.minutes(5),
            using_metrics={"r": rejections, "g": predictions[0], "n": predictions[1]})
        training = [cw.MathExpression(
            expression=f"SEARCH('{{/aws/sagemaker/TrainingJobs,Host}} MetricName=\"{name}\"', 'Maximum', 3600)",
            label=name, period=cdk.Duration.hours(1)) for name in ("test_auc", "test_sensitivity", "val_auc")]
        dashboard = cw.Dashboard(self, "Dashboard", dashboard_name=f"glaucoma-{self.settings.stage}")
        dashboard.add_widgets(
            cw.GraphWidget(title="API latency (ms)", width=8, left=[
                self._api_metric("Latency", s) for s in ("p50", "p90", "p99")]),
            cw.GraphWidget(title="API errors", width=8, left=[
                self._api_metric("4XXError", "Sum"), self._api_metric("5XXError", "Sum")]),
            cw.GraphWidget(title="Predictions by label; rejection rate", width=8, left=predictions,
                           right=[rejection_rate]))
        dashboard.add_widgets(
            cw.GraphWidget(title="Lambda duration (ms, p90)", width=6, left=[
                fn.metric_duration(statistic="p90", label=label) for label, fn in functions.items()]),
            cw.GraphWidget(title="Lambda errors and throttles", width=6, left=[
                m for label, fn in functions.items() for m in (fn.metric_errors(label=f"errors {label}"),
                                                              fn.metric_throttles(label=f"throttles {label}"))]),
            cw.GraphWidget(title="Concurrent executions", width=6, left=[
                fn.metric("ConcurrentExecutions", statistic="Maximum", label=label)
                for label, fn in functions.items()]),
            cw.GraphWidget(title="Cold starts", width=6, left=cold_starts))
        dashboard.add_widgets(
            cw.GraphWidget(title="Queue: age of oldest message (s) and depth", width=8,
                           left=[self.queue.metric_approximate_age_of_oldest_message()],
                           right=[self.queue.metric_approximate_number_of_messages_visible()]),
            cw.GraphWidget(title="Dead-letter queue depth", width=8,
                           left=[self.dead_letter_queue.metric_approximate_number_of_messages_visible()]),
            cw.GraphWidget(title="Screening latency (ms) and training job metrics", width=8,
                           left=[self.custom_metric(telemetry.INFERENCE_LATENCY, statistic="p90")],
                           right=training))
        return dashboard

    def _alarms(self) -> None:
        action = cw_actions.SnsAction(self.alarm_topic)

        def alarm(name: str, metric, threshold: float, description: str, periods: int = 1) -> None:
            created = cw.Alarm(self, name, metric=metric, threshold=threshold, evaluation_periods=periods,
                               comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
                               treat_missing_data=cw.TreatMissingData.NOT_BREACHING, alarm_description=description)
            created.add_alarm_action(action)

        alarm("DeadLetterQueueNotEmpty",
              self.dead_letter_queue.metric_approximate_number_of_messages_visible(
                  statistic="Maximum", period=cdk.Duration.minutes(1)),
              0, "Images whose processing failed 3 times wait in the DLQ")
        for label, fn in (("Api", self.api_function), ("Consumer", self.consumer)):
            alarm(f"{label}FunctionErrorRate", cw.MathExpression(
                expression="100 * errors / MAX([errors, invocations])", period=cdk.Duration.minutes(5),
                using_metrics={"errors": fn.metric_errors(statistic="Sum"),
                               "invocations": fn.metric_invocations(statistic="Sum")}),
                  5, f"{label} function: more than 5 % of invocations failed", periods=2)
        alarm("Api5xxRate", cw.MathExpression(
            expression="100 * e / MAX([e, c])", period=cdk.Duration.minutes(5),
            using_metrics={"e": self._api_metric("5XXError", "Sum"), "c": self._api_metric("Count", "Sum")}),
              1, "More than 1 % of API requests answered 5XX", periods=2)
        alarm("ApiP99Latency", self._api_metric("Latency", "p99"), self.settings.api_p99_latency_alarm_ms,
              "API p99 latency above its target", periods=3)
        alarm("QueueAge", self.queue.metric_approximate_age_of_oldest_message(statistic="Maximum"),
              self.settings.queue_age_alarm_seconds, "Images wait too long in the queue", periods=2)
