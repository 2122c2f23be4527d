"""The clinicians' web page: a private S3 bucket served by CloudFront over HTTPS only.

CloudFront reads the bucket through an origin access control (the bucket stays
private and TLS-only); viewers are redirected to HTTPS. `origin` is what the
API's CORS allows, and nothing else.

`deploy_page` uploads the page at deploy time (BucketDeployment: no Docker at
synth), laid out as the local cloud serves it (localcloud/static_site.py):
`/index.html`, `/web/<file>` (web/), `/samples/index.json` and the bundled
samples, `/model-report/index.json` and the bundled model's plots, plus
`/config.json` = {"ApiUrl": "<the stage's invoke URL>"} so the page can find the
API (the local cloud serves page and API from one origin; on AWS they differ).
"""

from __future__ import annotations

import json

import aws_cdk as cdk
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_s3_deployment as s3deploy
from constructs import Construct


from infra.settings import DeploymentSettings
from infra.storage import Storage
from localcloud import static_site

CONFIG_FILE = "config.json"  # {"ApiUrl": ...}: where the page finds the API


class WebHosting(Construct):
    def __init__(self, scope: Construct, construct_id: str, settings: DeploymentSettings,
                 storage: Storage) -> None:
        super().__init__(scope, construct_id)
        # Private, TLS-only, versioned, logged; retained with the other buckets (it is
        # re-uploaded from the repository, so deleting it by hand loses nothing).
        self.bucket = storage.private_bucket("WebBucket", "web/")
        custom_domain = {}
        if settings.web_domain_name:
            custom_domain = dict(
                domain_names=[settings.web_domain_name],
                certificate=acm.Certificate.from_certificate_arn(self, "Certificate",
                                                                 settings.web_certificate_arn),
                minimum_protocol_version=cloudfront.SecurityPolicyProtocol.TLS_V1_2_2021)
        self.distribution = cloudfront.Distribution(
            self, "Distribution", comment=f"glaucoma screening web page ({settings.stage})",
            default_root_object="index.html",
            default_behavior=cloudfront.BehaviorOptions(
                origin=origins.S3BucketOrigin.with_origin_access_control(self.bucket),
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
                allowed_methods=cloudfront.AllowedMethods.ALLOW_GET_HEAD,
                response_headers_policy=cloudfront.ResponseHeadersPolicy.SECURITY_HEADERS),
            http_version=cloudfront.HttpVersion.HTTP2_AND_3,
            price_class=cloudfront.PriceClass.PRICE_CLASS_100,
            enable_logging=True, log_bucket=storage.access_logs, log_file_prefix="cloudfront/",
            **custom_domain)
        domain = settings.web_domain_name or self.distribution.distribution_domain_name
        self.origin = f"https://{domain}"

    def deploy_page(self, api_url: str) -> s3deploy.BucketDeployment:
        """Upload the page, its samples and model plots, and config.json (read by the page for the API URL)."""
        folders = {"Page": (static_site.WEB_DIR, "web/", ["README.md"]),
                   "Samples": (static_site.SAMPLES_DIR, "samples/", []),
                   "ModelReport": (static_site.REPORT_DIR, "model-report/", ["*", "!*.png"])}
        self.folder_deployments = []
        for name, (folder, prefix, exclude) in folders.items():
            self.folder_deployments.append(s3deploy.BucketDeployment(
                self, f"{name}Deployment", destination_bucket=self.bucket, destination_key_prefix=prefix,
                sources=[s3deploy.Source.asset(str(folder), exclude=exclude)], prune=True,
                cache_control=[s3deploy.CacheControl.max_age(cdk.Duration.minutes(5))]))
        # The generated files go last (they sit beside the folders' objects, never pruned by them). No
        # invalidation (CDK would grant it on every distribution, '*'): the folders' files are cached 5
        # minutes and these are `no-cache`, so a redeploy is seen within 5 minutes.
        self.config_deployment = s3deploy.BucketDeployment(
            self, "ConfigDeployment", destination_bucket=self.bucket, prune=False,
            sources=[s3deploy.Source.data("index.html", (static_site.WEB_DIR / "index.html").read_text()),
                     s3deploy.Source.json_data(CONFIG_FILE, {"ApiUrl": api_url}),
                     s3deploy.Source.data("samples/index.json",
                                          json.dumps({"samples": static_site.sample_index()})),
                     s3deploy.Source.data("model-report/index.json",
                                          json.dumps(static_site.model_report_index()))],
            cache_control=[s3deploy.CacheControl.no_cache()])
        for deployment in self.folder_deployments:
            self.config_deployment.node.add_dependency(deployment)
        return self.config_deployment
