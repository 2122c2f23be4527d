"""API Gateway's routes are the OpenAPI document's, and every route the functions serve is deployed.

The resolver (handlers.api.app, with the retraining router it includes) is what the
API function answers; the template's resources and methods are what AWS routes to
it. Before this, POST /retrain went to another function, and the retraining,
heatmap and /docs routes were missing (a 403 "Missing Authentication Token").
"""

from __future__ import annotations

import json
import re


from handlers import openapi_spec
from infra.routes import UNDOCUMENTED, api_routes


def resolver_routes() -> set[tuple[str, str]]:
    from handlers.api import app

    return {(re.sub(r"<([^>]+)>", r"{\1}", r.path), r.method.upper())
            for r in (*app._static_routes, *app._dynamic_routes)}


def documented_routes() -> set[tuple[str, str]]:
    return {(path, method.upper()) for path, ops in openapi_spec.PATHS.items() for method in ops}


def resource_paths(template) -> dict[str, str]:
    """Logical id of each AWS::ApiGateway::Resource -> its full path."""
    resources = template.find_resources("AWS::ApiGateway::Resource")
    paths: dict[str, str] = {}

    def path_of(logical_id: str) -> str:
        if logical_id not in paths:
            props = resources[logical_id]["Properties"]
            parent = props["ParentId"]
            prefix = path_of(parent["Ref"]) if "Ref" in parent else ""
            paths[logical_id] = f"{prefix}/{props['PathPart']}"
        return paths[logical_id]

    for logical_id in resources:
        path_of(logical_id)
    return paths


def gateway_methods(template) -> dict[tuple[str, str], dict]:
    """(path, method) -> the method's properties, preflights left out."""
    paths = resource_paths(template)
    methods = {}
    for method in template.find_resources("AWS::ApiGateway::Method").values():
        props = method["Properties"]
        if props["HttpMethod"] == "OPTIONS":
            continue
        resource = props["ResourceId"]
        path = paths[resource["Ref"]] if "Ref" in resource else "/"
        methods[(path, props["HttpMethod"])] = props
    return methods


def function_id(template, handler: str) -> str:
    return next(k for k, f in template.find_resources("AWS::Lambda::Function").items()
                if f["Properties"].get("ImageConfig", {}).get("Command") == [handler])


def test_every_route_the_functions_serve_is_on_the_gateway_and_goes_to_the_api_function(template):
    methods = gateway_methods(template)
    served = resolver_routes()
    assert {("/retrain", "POST"), ("/retrain/{job}", "GET"), ("/uploads/training", "POST"), ("/dataset", "GET"),
            ("/models", "GET"), ("/models/{version}/promote", "POST"),
            ("/predictions/{prediction_id}/heatmap.png", "GET"), ("/docs", "GET"), ("/docs/{asset}", "GET"),
            ("/openapi.json", "GET")} <= served
    assert set(methods) == served
    api_function = function_id(template, "handlers.api.handler")
    retrain_function = function_id(template, "handlers.retrain.start_handler")
    for route, props in methods.items():
        assert props["Integration"]["Type"] == "AWS_PROXY", route
        uri = json.dumps(props["Integration"]["Uri"])
        assert api_function in uri and retrain_function not in uri, route


def test_only_the_documents_public_routes_go_without_an_api_key(template):
    methods = gateway_methods(template)
    public = {(path, method.upper()) for path, ops in openapi_spec.PATHS.items()
              for method, op in ops.items() if op.get("security") == []}
    assert public == {("/docs", "GET"), ("/docs/{asset}", "GET"), ("/openapi.json", "GET")}
    assert {route for route, props in methods.items() if not props["ApiKeyRequired"]} == public
    assert all(props["ApiKeyRequired"] is True for route, props in methods.items() if route not in public)
    assert all(props["AuthorizationType"] == "NONE" for props in methods.values())


def test_gateway_validates_the_documents_parameters(template):
    methods = gateway_methods(template)
    sources = {"query": "querystring", "path": "path", "header": "header"}
    for path, operations in openapi_spec.PATHS.items():
        for method, operation in operations.items():
            expected = {f"method.request.{sources[p['in']]}.{p['name']}": bool(p.get("required"))
                        for p in operation.get("parameters", [])}
            assert methods[(path, method.upper())].get("RequestParameters", {}) == expected, (path, method)
    assert {"method.request.querystring.limit": False, "method.request.querystring.label": False,
            "method.request.querystring.cursor": False}.items() <= methods[("/predictions", "GET")][
        "RequestParameters"].items()
    assert methods[("/predict", "POST")]["RequestParameters"]["method.request.header.Idempotency-Key"] is False
    for (path, _), props in methods.items():  # every path parameter is required, documented or not
        for name in re.findall(r"\{([^}]+)\}", path):
            assert props["RequestParameters"][f"method.request.path.{name}"] is True, path
        assert props.get("RequestValidatorId"), path


def test_cors_preflight_allows_the_idempotency_key(template):
    preflights = [m["Properties"] for m in template.find_resources("AWS::ApiGateway::Method").values()
                  if m["Properties"]["HttpMethod"] == "OPTIONS"]
    assert len(preflights) >= len({path for path, _ in resolver_routes()})
    for method in preflights:
        [response] = method["Integration"]["IntegrationResponses"]
        allowed = response["ResponseParameters"]["method.response.header.Access-Control-Allow-Headers"]
        assert {"idempotency-key", "x-api-key", "content-type"} <= set(allowed.strip("'").split(","))


def test_the_undocumented_list_is_exactly_the_gap_between_resolver_and_document():
    """Routes are deployed from the document plus UNDOCUMENTED; this keeps the list honest."""
    assert resolver_routes() - documented_routes() == set(UNDOCUMENTED)
    assert documented_routes() <= resolver_routes()  # the document names nothing the functions lack
    assert {(r.path, r.method) for r in api_routes()} == resolver_routes()


def test_the_openapi_document_describes_every_served_route():
    assert resolver_routes() == documented_routes()
