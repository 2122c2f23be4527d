"""The REST API: every route of the OpenAPI document to the API function, a key and usage plan per clinic.

The resources and methods come from functions/handlers/openapi_spec.py (infra/routes.py):
the routes the document marks `security: []` (/docs, /docs/{asset}, /openapi.json) need no
key, every other one does. POST /retrain and the other retraining routes go to the API
function, like every route; the retrain function only serves the EventBridge schedule.

Each clinic's key belongs to its own usage plan (its own throttle and daily
quota); the admin key sees every clinic. The functions learn which key is
which clinic from API_KEY_CLINICS (functions/screening/tenancy.py). CORS
allows the web page's origin only.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.routes import api_routes
from infra.settings import DeploymentSettings
from screening.tenancy import ADMIN

ADMIN_KEY = "admin"
# The headers a browser may send: the key, the body's type, and the retry key of POST /predict(/batch).
CORS_ALLOWED_HEADERS = ["content-type", "x-api-key", "idempotency-key"]
BINARY_MEDIA_TYPES = ["image/*", "multipart/form-data", "application/octet-stream"]  # never */*


class ScreeningApi(Construct):
    def __init__(self, scope: Construct, construct_id: str, settings: DeploymentSettings,
                 api_function: lambda_.IFunction, cors_origin: str) -> None:
        super().__init__(scope, construct_id)
        self.settings = settings
        access_log_group = logs.LogGroup(self, "AccessLogs", retention=logs.RetentionDays.THREE_MONTHS,
                                         removal_policy=cdk.RemovalPolicy.DESTROY)
        self.rest_api = apigw.RestApi(
            self, "Api", rest_api_name=f"glaucoma-{settings.stage}",
            description="Glaucoma screening (research and education use only)",
            binary_media_types=BINARY_MEDIA_TYPES,
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
                allow_origins=[cors_origin], allow_methods=["GET", "POST", "OPTIONS"],
                allow_headers=CORS_ALLOWED_HEADERS, max_age=cdk.Duration.minutes(5)),
            default_method_options=apigw.MethodOptions(api_key_required=True))
        # The gateway's own refusals (no key, throttled, too large) carry CORS headers too, so the
        # web page can read them.
        for response_type in (apigw.ResponseType.DEFAULT_4_XX, apigw.ResponseType.DEFAULT_5_XX):
            self.rest_api.add_gateway_response(
                f"Cors{response_type.response_type}", type=response_type,
                response_headers={"Access-Control-Allow-Origin": f"'{cors_origin}'", "Vary": "'Origin'"})
        validator = apigw.RequestValidator(self, "ParameterValidator", rest_api=self.rest_api,
                                           validate_request_parameters=True, validate_request_body=True)
        integration = apigw.LambdaIntegration(api_function, proxy=True)
        for route in api_routes():
            self.rest_api.root.resource_for_path(route.resource_path).add_method(
                route.method, integration, request_parameters=dict(route.request_parameters) or None,
                request_validator=validator, api_key_required=not route.public,
                authorization_type=apigw.AuthorizationType.NONE)

        # Keys stand alone (no stage link of their own: the usage plan links them), so the
        # functions can carry their ids without a dependency cycle through the deployment.
        self.keys: dict[str, apigw.ApiKey] = {}
        self.clinic_of_key: dict[str, str] = {}
        for clinic in (*settings.clinics, ADMIN_KEY):
            key = apigw.ApiKey(self, f"ApiKey-{clinic}", api_key_name=f"glaucoma-{settings.stage}-{clinic}",
                               description=f"API key of {clinic}" if clinic != ADMIN_KEY
                               else "Admin API key: sees every clinic's records")
            plan = apigw.UsagePlan(
                self, f"UsagePlan-{clinic}", name=f"glaucoma-{settings.stage}-{clinic}",
                throttle=apigw.ThrottleSettings(rate_limit=settings.api_rate_limit,
                                                burst_limit=settings.api_burst_limit),
                quota=apigw.QuotaSettings(limit=settings.api_quota_per_day, period=apigw.Period.DAY),
                api_stages=[apigw.UsagePlanPerApiStage(api=self.rest_api, stage=self.rest_api.deployment_stage)])
            plan.add_api_key(key)
            self.keys[clinic] = key
            self.clinic_of_key[clinic] = ADMIN if clinic == ADMIN_KEY else clinic

    @property
    def key_clinic_map(self) -> str:
        """API_KEY_CLINICS: {API key id: clinic or "*"} as JSON (key ids are alphanumeric tokens)."""
        entries = ",".join(f'"{self.keys[name].key_id}":"{clinic}"' for name, clinic in self.clinic_of_key.items())
        return "{" + entries + "}"

    def metric(self, name: str, statistic: str) -> cw.Metric:
        return cw.Metric(namespace="AWS/ApiGateway", metric_name=name, statistic=statistic,
                         dimensions_map={"ApiName": self.rest_api.rest_api_name, "Stage": self.settings.stage},
                         period=cdk.Duration.minutes(5), label=f"{name} {statistic}")
