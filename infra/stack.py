"""The whole system: one construct per concern, composed.

Names of keys, prefixes, indexes and the queue, batch and table settings come
from functions/screening/resources.py, which the local cloud uses too; the
environment variables the functions read are those of
functions/screening/config.py; per-deployment settings are `DeploymentSettings`
(infra/settings.py).
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.api import ScreeningApi
from infra.functions import ScreeningFunctions
from infra.observability import Observability
from infra.queueing import Queueing
from infra.retraining import Retraining
from infra.settings import DeploymentSettings
from infra.storage import Storage
from infra.web import WebHosting

__all__ = ["DeploymentSettings", "GlaucomaScreeningStack"]


class GlaucomaScreeningStack(cdk.Stack):
    def __init__(self, scope: Construct, construct_id: str, settings: DeploymentSettings, **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.settings = settings
        self.storage = Storage(self, "Storage", settings)
        self.queueing = Queueing(self, "Queueing", self.storage)
        self.web = WebHosting(self, "Web", settings, self.storage)
        # Browsers upload straight to S3, from the web page only: large images with the presigned POST
        # of POST /uploads, labelled training images with the presigned PUT of POST /uploads/training.
        self.storage.image_bucket.add_cors_rule(
            allowed_methods=[s3.HttpMethods.POST], allowed_origins=[self.web.origin],
            allowed_headers=["content-type"], max_age=300)
        self.storage.model_bucket.add_cors_rule(
            allowed_methods=[s3.HttpMethods.PUT], allowed_origins=[self.web.origin],
            allowed_headers=["content-type"], max_age=300)
        self.functions = ScreeningFunctions(self, "Functions", settings, self.storage, self.queueing,
                                            cors_origin=self.web.origin)
        self.retraining = Retraining(self, "Retraining", settings, self.storage, self.functions.factory,
                                     self.functions.api_function)
        self.api = ScreeningApi(self, "Api", settings, self.functions.api_function, cors_origin=self.web.origin)
        # Every function that reads or writes records knows the clinic of each key (the retrain
        # function serves only the schedule: no API key reaches it).
        for fn in (self.functions.api_function, self.functions.consumer):
            fn.add_environment("API_KEY_CLINICS", self.api.key_clinic_map)
        self.web.deploy_page(self.api.rest_api.url)
        self.observability = Observability(self, "Observability", settings, self.functions, self.queueing,
                                           self.api)

        dashboard = self.observability.dashboard.dashboard_name
        outputs = {
            "ApiUrl": self.api.rest_api.url,
            "WebUrl": self.web.origin,
            "WebBucketName": self.web.bucket.bucket_name,
            "ImageBucketName": self.storage.image_bucket.bucket_name,
            "ModelBucketName": self.storage.model_bucket.bucket_name,
            "AccessLogBucketName": self.storage.access_logs.bucket_name,
            "ResultsTableName": self.storage.table.table_name,
            "AlarmTopicArn": self.observability.topic.topic_arn,
            "DashboardUrl": f"https://{self.region}.console.aws.amazon.com/cloudwatch/home"
                            f"?region={self.region}#dashboards:name={dashboard}",
        }
        outputs.update({f"ApiKeyId{''.join(p.title() for p in name.split('-'))}": key.key_id
                        for name, key in self.api.keys.items()})
        for output, value in outputs.items():
            cdk.CfnOutput(self, output, value=value)
