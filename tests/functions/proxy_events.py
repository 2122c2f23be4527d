"""API Gateway (REST) Lambda proxy events as API Gateway sends them, API key id included.

Headers and request context follow a real regional REST API's event (the
CloudFront and X-Forwarded headers, both single- and multi-value), so their size
is what a deployed function sees beside the body.
"""

from __future__ import annotations

from localcloud.api_gateway import proxy_event as local_proxy_event

DEPLOYED_HEADERS = {
    "Accept": "*/*", "CloudFront-Forwarded-Proto": "https", "CloudFront-Is-Desktop-Viewer": "true",
    "CloudFront-Is-Mobile-Viewer": "false", "CloudFront-Is-SmartTV-Viewer": "false",
    "CloudFront-Is-Tablet-Viewer": "false", "CloudFront-Viewer-ASN": "3320",
    "CloudFront-Viewer-Country": "DE", "Host": "abc123def4.execute-api.eu-central-1.amazonaws.com",
    "User-Agent": "curl/8.5.0", "Via": "2.0 0123456789abcdef0123456789abcdef.cloudfront.net (CloudFront)",
    "X-Amz-Cf-Id": "Cx9p0YQ3G9m3bLz6kq1Yl8fA7w2mXcVbNnQwErTyUiOpAsDfGhJkLz==",
    "X-Amzn-Trace-Id": "Root=1-6740a1b2-0123456789abcdef01234567",
    "X-Forwarded-For": "203.0.113.7, 130.176.0.1", "X-Forwarded-Port": "443",
    "X-Forwarded-Proto": "https", "x-api-key": "k" * 40,
}
DEPLOYED_CONTEXT = {
    "resourceId": "a1b2c3", "extendedRequestId": "BpS8xE7pFiAEhQ=", "requestTime": "22/Nov/2026:21:00:00 +0000",
    "accountId": "123456789012", "protocol": "HTTP/1.1", "domainPrefix": "abc123def4",
    "domainName": "abc123def4.execute-api.eu-central-1.amazonaws.com", "apiId": "abc123def4",
}
DEPLOYED_IDENTITY = {
    "cognitoIdentityPoolId": None, "accountId": None, "cognitoIdentityId": None, "caller": None,
    "sourceIp": "203.0.113.7", "principalOrgId": None, "accessKey": None, "cognitoAuthenticationType": None,
    "cognitoAuthenticationProvider": None, "userArn": None, "userAgent": "curl/8.5.0", "user": None,
}


def proxy_event(method: str, raw_path: str, body: bytes = b"", content_type: str = "",
                api_key_id: str = "", stage: str = "prod", resource: str | None = None,
                path_parameters: dict | None = None) -> dict:
    """The local gateway's event (localcloud/api_gateway.py), with what a deployed API adds."""
    headers = {**DEPLOYED_HEADERS, **({"Content-Type": content_type} if content_type else {})}
    event = local_proxy_event(method, raw_path, headers, body, stage, api_key="k" * 40,
                              api_key_id=api_key_id or None)
    event["resource"] = event["requestContext"]["resourcePath"] = resource or event["path"]
    event["pathParameters"] = path_parameters
    event["requestContext"].update(DEPLOYED_CONTEXT)
    event["requestContext"]["identity"].update(DEPLOYED_IDENTITY)
    return event
