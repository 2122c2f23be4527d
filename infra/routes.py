"""The REST API's routes, read from the one OpenAPI document (functions/handlers/openapi_spec.py).

Every path and method of the document becomes an API Gateway resource and method;
an operation with `security: []` is served without an API key, the others need
one; its query, path and header parameters are the ones the gateway validates.

UNDOCUMENTED lists the routes the functions serve that the document does not
describe yet. They are deployed too (with the key, their path parameters
required), so that nothing the functions answer is a 403 "Missing Authentication
Token" on AWS; tests/infra/test_routes.py fails when this list and the gap
between the Powertools resolver and the document differ, so an entry is
removed as soon as the document describes it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from handlers import openapi_spec

# (path, method) served by handlers/api.py (and the router it includes) but missing from the document.
UNDOCUMENTED: frozenset[tuple[str, str]] = frozenset()  # the document describes every route
PARAMETER_SOURCES = {"query": "querystring", "path": "path", "header": "header"}


@dataclass(frozen=True)
class Route:
    path: str  # OpenAPI form: /predictions/{prediction_id}
    method: str  # upper case
    public: bool  # served without an API key (the document's `security: []`)
    request_parameters: tuple[tuple[str, bool], ...]  # ("method.request.querystring.limit", required)

    @property
    def resource_path(self) -> str:
        return self.path.lstrip("/")


def path_parameters(path: str) -> list[str]:
    return re.findall(r"\{([^}]+)\}", path)


def _documented(path: str, method: str, operation: dict) -> Route:
    parameters = {}
    for parameter in operation.get("parameters", []):
        source = PARAMETER_SOURCES.get(parameter["in"])
        if source:
            parameters[f"method.request.{source}.{parameter['name']}"] = bool(parameter.get("required"))
    for name in path_parameters(path):  # a path parameter is always required
        parameters[f"method.request.path.{name}"] = True
    public = operation.get("security", None) == []
    return Route(path, method.upper(), public, tuple(sorted(parameters.items())))


def api_routes() -> list[Route]:
    """Every route of the document, then the undocumented ones; sorted by path and method."""
    routes = [_documented(path, method, operation)
              for path, operations in openapi_spec.PATHS.items() for method, operation in operations.items()]
    documented = {(r.path, r.method) for r in routes}
    overlap = documented & UNDOCUMENTED
    if overlap:
        raise ValueError(f"documented now, remove from infra/routes.py UNDOCUMENTED: {sorted(overlap)}")
    routes += [Route(path, method, False, tuple((f"method.request.path.{name}", True)
                                                for name in path_parameters(path)))
               for path, method in UNDOCUMENTED]
    return sorted(routes, key=lambda r: (r.path, r.method))
