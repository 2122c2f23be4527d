"""The clinicians' web page: a private S3 bucket served by CloudFront over HTTPS only.

CloudFront reads the bucket through an origin access control (the bucket stays
private and TLS-only); viewers are redirected to HTTPS. `origin` is what the
API's CORS allows, and nothing else.
"""

from __future__ import annotations

from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from constructs import Construct

from infra.settings import DeploymentSettings
from infra.storage import Storage


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
