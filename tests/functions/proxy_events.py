"""API Gateway (REST) Lambda proxy events as API Gateway sends them, API key id included.

Headers and request context follow a real regional REST API's event (the
CloudFront and X-Forwarded headers, both single- and multi-value), so their size
is what a deployed function sees beside the body.
"""

from __future__ import annotations

import base64
import time
import uuid
from urllib.parse import parse_qs, urlsplit

BINARY_MEDIA_TYPES = ("image/", "multipart/form-data", "application/octet-stream")  # as infra/api.py


def proxy_event(method: str, raw_path: str, body: bytes = b"", content_type: str = "",
                api_key_id: str = "", stage: str = "prod", resource: str | None = None,
                path_parameters: dict | None = None) -> dict:
    url = urlsplit(raw_path)
    query = parse_qs(url.query, keep_blank_values=True)
    headers = {
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
    if content_type:
        headers["Content-Type"] = content_type
    binary = any(content_type.lower().startswith(t) for t in BINARY_MEDIA_TYPES)
    return {
        "resource": resource or url.path,
        "path": url.path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": path_parameters,
        "stageVariables": None,
        "requestContext": {
            "resourceId": "a1b2c3", "resourcePath": resource or url.path, "httpMethod": method,
            "extendedRequestId": "BpS8xE7pFiAEhQ=", "requestTime": "22/Nov/2026:21:00:00 +0000",
            "path": f"/{stage}{url.path}", "accountId": "123456789012", "protocol": "HTTP/1.1",
            "stage": stage, "domainPrefix": "abc123def4", "requestTimeEpoch": int(time.time() * 1000),
            "requestId": str(uuid.uuid4()), "domainName": "abc123def4.execute-api.eu-central-1.amazonaws.com",
            "apiId": "abc123def4",
            "identity": {"cognitoIdentityPoolId": None, "accountId": None, "cognitoIdentityId": None,
                         "caller": None, "apiKey": "k" * 40, "apiKeyId": api_key_id or None,
                         "sourceIp": "203.0.113.7", "principalOrgId": None, "accessKey": None,
                         "cognitoAuthenticationType": None, "cognitoAuthenticationProvider": None,
                         "userArn": None, "userAgent": "curl/8.5.0", "user": None},
        },
        "body": (base64.b64encode(body).decode() if binary else body.decode("utf-8", "surrogateescape"))
        if body else None,
        "isBase64Encoded": bool(body) and binary,
    }
