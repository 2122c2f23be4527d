"""Dashboard, alarms and the alarm topic.

The topic is encrypted with a customer-managed key whose policy lets CloudWatch
use it: CloudWatch cannot use the AWS-managed `alias/aws/sns` key, and alarms
publishing to a topic encrypted with it are silently dropped. The topic policy
lets this stack's alarms publish (and nothing else), over TLS only.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subs
from constructs import Construct

from infra.api import ScreeningApi
from infra.functions import ScreeningFunctions
from infra.queueing import Queueing
from infra.settings import DeploymentSettings
from screening import resources, telemetry

CLOUDWATCH = "cloudwatch.amazonaws.com"


def custom_metric(name: str, statistic: str = "Sum", label: str = "") -> cw.Metric:
    """A metric the functions emit through Powertools (service dimension only)."""
    return cw.Metric(namespace=resources.METRICS_NAMESPACE, metric_name=name, statistic=statistic,
                     dimensions_map={telemetry.SERVICE_DIMENSION: resources.SERVICE_NAME},
                     period=cdk.Duration.minutes(5), label=label or name)


class Observability(Construct):
    def __init__(self, scope: Construct, construct_id: str, settings: DeploymentSettings,
                 functions: ScreeningFunctions, queueing: Queueing, api: ScreeningApi) -> None:
        super().__init__(scope, construct_id)
        self.settings, self.functions, self.queueing, self.api = settings, functions, queueing, api
        stack = cdk.Stack.of(self)
        # Alarms are named "<stack name>-<alarm>": the grants below cover those only.
        self.alarm_name_prefix = f"{stack.stack_name}-"
        alarms_of_this_stack = {
            "ArnLike": {"aws:SourceArn": stack.format_arn(service="cloudwatch", resource="alarm",
                                                          resource_name=f"{self.alarm_name_prefix}*",
                                                          arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME)},
            "StringEquals": {"aws:SourceAccount": stack.account}}
        self.topic_key = kms.Key(self, "AlarmTopicKey", enable_key_rotation=True,
                                 description="Encrypts the alarm topic; CloudWatch may use it to publish alarms",
                                 removal_policy=cdk.RemovalPolicy.DESTROY)
        self.topic_key.add_to_resource_policy(iam.PolicyStatement(
            sid="CloudWatchAlarmsPublishToTheEncryptedTopic",
            principals=[iam.ServicePrincipal(CLOUDWATCH)],
            actions=["kms:Decrypt", "kms:GenerateDataKey*"], resources=["*"],  # "*" is this key in a key policy
            conditions=alarms_of_this_stack))
        self.topic = sns.Topic(self, "AlarmTopic", display_name="Glaucoma screening alarms",
                               master_key=self.topic_key, enforce_ssl=True)
        self.topic.add_to_resource_policy(iam.PolicyStatement(
            sid="CloudWatchAlarmsPublish", principals=[iam.ServicePrincipal(CLOUDWATCH)],
            actions=["sns:Publish"], resources=[self.topic.topic_arn], conditions=alarms_of_this_stack))
        if settings.alarm_email:
            self.topic.add_subscription(subs.EmailSubscription(settings.alarm_email))
        self.dashboard = self._dashboard()
        self.alarms = self._alarms()

    def _dashboard(self) -> cw.Dashboard:
        functions, queue, dlq = self.functions.all, self.queueing.queue, self.queueing.dead_letter_queue
        cold_starts = [cw.Metric(namespace=resources.METRICS_NAMESPACE, metric_name=telemetry.COLD_START,
                                 statistic="Sum", period=cdk.Duration.minutes(5), label=f"cold starts {label}",
                                 dimensions_map={"function_name": fn.function_name,
                                                 telemetry.SERVICE_DIMENSION: resources.SERVICE_NAME})
                       for label, fn in functions.items()]
        predictions = [custom_metric(name, label=f"{label} predictions")
                       for label, name in telemetry.PREDICTIONS_BY_LABEL.items()]
        rejection_rate = cw.MathExpression(
            expression="100 * r / (r + g + n)", label="rejection rate %", period=cdk.Duration.minutes(5),
            using_metrics={"r": custom_metric(telemetry.REJECTIONS), "g": predictions[0], "n": predictions[1]})
        training = [cw.MathExpression(
            expression=f"SEARCH('{{/aws/sagemaker/TrainingJobs,Host}} MetricName=\"{name}\"', 'Maximum', 3600)",
            label=name, period=cdk.Duration.hours(1)) for name in ("test_auc", "test_sensitivity", "val_auc")]
        dashboard = cw.Dashboard(self, "Dashboard")  # generated name: unique per stack
        dashboard.add_widgets(
            cw.GraphWidget(title="API latency (ms)", width=8, left=[
                self.api.metric("Latency", s) for s in ("p50", "p90", "p99")]),
            cw.GraphWidget(title="API errors", width=8, left=[
                self.api.metric("4XXError", "Sum"), self.api.metric("5XXError", "Sum")]),
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
                           left=[queue.metric_approximate_age_of_oldest_message()],
                           right=[queue.metric_approximate_number_of_messages_visible()]),
            cw.GraphWidget(title="Dead-letter queue depth", width=8,
                           left=[dlq.metric_approximate_number_of_messages_visible()]),
            cw.GraphWidget(title="Screening latency (ms) and training job metrics", width=8,
                           left=[custom_metric(telemetry.INFERENCE_LATENCY, statistic="p90")],
                           right=training))
        return dashboard

    def _alarms(self) -> list[cw.Alarm]:
        action = cw_actions.SnsAction(self.topic)
        created: list[cw.Alarm] = []

        def alarm(name: str, metric, threshold: float, description: str, periods: int = 1) -> None:
            # "<stack>-<name>": unique per account and region, gone with the stack, and matched by the
            # topic's and key's aws:SourceArn condition.
            made = cw.Alarm(self, name, metric=metric, threshold=threshold, evaluation_periods=periods,
                            alarm_name=f"{self.alarm_name_prefix}{name}",
                            comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
                            treat_missing_data=cw.TreatMissingData.NOT_BREACHING, alarm_description=description)
            made.add_alarm_action(action)
            created.append(made)

        alarm("DeadLetterQueueNotEmpty",
              self.queueing.dead_letter_queue.metric_approximate_number_of_messages_visible(
                  statistic="Maximum", period=cdk.Duration.minutes(1)),
              0, f"Images whose processing failed {resources.SQS_MAX_RECEIVE_COUNT} times wait in the DLQ")
        for label, fn in (("Api", self.functions.api_function), ("Consumer", self.functions.consumer)):
            alarm(f"{label}FunctionErrorRate", cw.MathExpression(
                expression="100 * errors / MAX([errors, invocations])", period=cdk.Duration.minutes(5),
                using_metrics={"errors": fn.metric_errors(statistic="Sum"),
                               "invocations": fn.metric_invocations(statistic="Sum")}),
                  5, f"{label} function: more than 5 % of invocations failed", periods=2)
        alarm("Api5xxRate", cw.MathExpression(
            expression="100 * e / MAX([e, c])", period=cdk.Duration.minutes(5),
            using_metrics={"e": self.api.metric("5XXError", "Sum"), "c": self.api.metric("Count", "Sum")}),
              1, "More than 1 % of API requests answered 5XX", periods=2)
        alarm("ApiP99Latency", self.api.metric("Latency", "p99"), self.settings.api_p99_latency_alarm_ms,
              "API p99 latency above its target", periods=3)
        alarm("QueueAge", self.queueing.queue.metric_approximate_age_of_oldest_message(statistic="Maximum"),
              self.settings.queue_age_alarm_seconds, "Images wait too long in the queue", periods=2)
        return created
