"""The API's OpenAPI 3.0 document: bodies and media types, bounded parameters, every status.

Written out rather than generated: Powertools' generator cannot describe raw image bodies,
multipart uploads or per-status error schemas. A test checks that its paths and methods are
exactly the resolver's routes, and schemathesis checks the running API against it.
"""

from __future__ import annotations

from screening import resources
from screening.http_inputs import (MAX_CURSOR_CHARS, MAX_FORM_NAME_CHARS, MAX_IDEMPOTENCY_KEY_CHARS, MAX_LIMIT,
                                   MAX_MULTIPART_PARTS)

IMAGE_MEDIA_TYPES = ("image/jpeg", "image/png", "image/tiff", "image/webp", "image/bmp")
API_KEY_SCHEME = "ApiKey"
PUBLIC_PATHS = ("/docs", "/docs/{asset}", "/openapi.json")  # readable without an API key


def _error(description: str) -> dict:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


ERRORS = {
    400: "The request is malformed; `error` names the mistake.",
    403: "Missing or wrong API key (answered by the gateway).",
    404: "Nothing at this id or S3 key.",
    409: "A request with this Idempotency-Key is still in progress.",
    413: "Over a size or count limit; `message` states the limit.",
    414: "The URL is longer than the gateway accepts.",
    415: "A content type this route does not accept.",
    422: "This Idempotency-Key was used with a different request.",
    429: "Throttled by the gateway's usage plan.",
    431: "The request's headers are larger than the gateway accepts.",
    500: "An unexpected fault; the request may be retried.",
    502: "The gateway got no valid answer from the function.",
    503: "Part of a batch could not be processed now; retry it with the same Idempotency-Key.",
}
EVERY_ROUTE = (414, 431, 500, 502)  # the gateway's own limits, and faults
KEYED_ROUTE = (403, 429)  # the API key check and the usage plan


def _responses(ok_status: int, ok: dict, *errors: int, security: bool = True) -> dict:
    out = {str(ok_status): ok}
    for status in sorted(set(errors) | set(EVERY_ROUTE) | (set(KEYED_ROUTE) if security else set())):
        out[str(status)] = {"$ref": f"#/components/responses/E{status}"}
    return out


def _json(schema_name: str, description: str) -> dict:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_name}"}}}}


IDEMPOTENCY_HEADER = {
    "name": "Idempotency-Key", "in": "header", "required": False,
    "description": "Makes a retry of this POST return the first answer (kept 24 hours); "
                   "reusing it for another request is a 422.",
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY_CHARS,
               "pattern": "^[\\x21-\\x7e]+$"},
}

SCHEMAS = {
    "Error": {
        "type": "object", "required": ["error", "message"],
        "properties": {"error": {"type": "string", "description": "Machine-readable code."},
                       "message": {"type": "string", "description": "What was wrong, for a person."}},
    },
    "Prediction": {
        "type": "object", "required": ["id", "status"],
        "description": "A stored result: `ok` with a label, or `rejected` with the reason.",
        "properties": {
            "id": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
            "status": {"type": "string", "enum": ["ok", "rejected"]},
            "label": {"type": "string", "enum": ["normal", "glaucoma", "cataract"]},
            "condition": {"type": "string", "description": "The condition screened (`?condition=`)."},
            "severity": {"type": "number", "minimum": 0, "maximum": 10,
                         "description": "Cataract only: the estimated expert severity (0 clear ... 10 dense)."},
            "cropped": {"type": "boolean",
                        "description": "Glaucoma: true when a full-field photograph was cropped around the optic "
                                       "disc the service found; the heatmap lies on the crop."},
            "crop_box": {"type": "array", "items": {"type": "integer"}, "minItems": 4, "maxItems": 4,
                         "description": "[left, top, right, bottom] of the crop in the original image's pixels "
                                        "(may extend past the image: padded black)."},
            "disc": {"type": "object", "description": "The optic disc found: x, y, diameter (original "
                                                      "pixels) and the locator's score."},
            "probability": {"type": "number", "minimum": 0, "maximum": 1},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            "threshold": {"type": "number"},
            "model_version": {"type": "string"},
            "latency_ms": {"type": "number"},
            "quality_flags": {"type": "array", "items": {"type": "string"}},
            "created_at": {"type": "string"},
            "source": {"type": "string"},
            "key": {"type": "string"},
            "reason": {"type": "string"},
            "message": {"type": "string"},
            "heatmap": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
            "heatmap_png_base64": {"type": "string"},
            "image": {"type": "object"},
        },
    },
    "BatchPart": {
        "type": "object", "required": ["part", "id", "status"],
        "description": "The outcome of one multipart part, named by position, field and file name.",
        "properties": {
            "part": {"type": "object", "required": ["index", "field"],
                     "properties": {"index": {"type": "integer", "minimum": 0},
                                    "field": {"type": "string"},
                                    "filename": {"type": "string", "nullable": True}}},
            "id": {"type": "string"},
            "status": {"type": "string", "enum": ["ok", "rejected", "failed"]},
            "stored": {"type": "boolean"},
            "error": {"type": "string"},
        },
    },
    "BatchResult": {
        "type": "object", "required": ["results"],
        "properties": {"results": {"type": "array", "items": {"$ref": "#/components/schemas/BatchPart"}},
                       "error": {"type": "string"}, "message": {"type": "string"}},
    },
    "PredictionList": {
        "type": "object", "required": ["items", "next_cursor"],
        "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/Prediction"}},
                       "next_cursor": {"type": "string", "nullable": True}},
    },
    "Status": {
        "type": "object", "required": ["model_version", "threshold", "counts"],
        "properties": {
            "model_version": {"type": "string"}, "threshold": {"type": "number"},
            "model_metrics": {"type": "object"},
            "counts": {"type": "object", "properties": {k: {"type": "integer", "minimum": 0}
                                                        for k in ("normal", "glaucoma", "rejected")}},
            "last_prediction_at": {"type": "string", "nullable": True},
            "queue_depth": {"type": "integer", "nullable": True},
            "dead_letter_depth": {"type": "integer", "nullable": True},
        },
    },
    "S3KeyRequest": {
        "type": "object", "required": ["s3_key"], "additionalProperties": False,
        "properties": {"s3_key": {"type": "string", "minLength": len(resources.INCOMING_PREFIX) + 1,
                                  "maxLength": 1024, "pattern": f"^{resources.INCOMING_PREFIX}"}},
    },
    "UploadRequest": {
        "type": "object", "additionalProperties": False,
        "properties": {"content_type": {"type": "string", "enum": list(IMAGE_MEDIA_TYPES),
                                        "default": "image/jpeg"}},
    },
    "Upload": {
        "type": "object", "required": ["upload_url", "method", "fields", "s3_key", "expires_in",
                                       "max_bytes"],
        "description": "POST the fields, then the image as form field `file`, to upload_url.",
        "properties": {"upload_url": {"type": "string"}, "method": {"type": "string", "enum": ["POST"]},
                       "fields": {"type": "object", "additionalProperties": {"type": "string"}},
                       "s3_key": {"type": "string"}, "expires_in": {"type": "integer"},
                       "max_bytes": {"type": "integer"}},
    },
}
# A BatchPart carries a Prediction's fields as well (its `status` may also be `failed`).
SCHEMAS["BatchPart"]["properties"] = {**SCHEMAS["Prediction"]["properties"],
                                      **SCHEMAS["BatchPart"]["properties"]}


def _image_bodies() -> dict:
    return {media: {"schema": {"type": "string", "format": "binary"}} for media in IMAGE_MEDIA_TYPES}


PATHS = {
    "/predict": {"post": {
        "summary": "Screen one image",
        "description": "The image as the raw body (image/*), as multipart field `file`, or JSON "
                       "{\"s3_key\": \"incoming/...\"} for an object already uploaded. A bad image is "
                       "answered with a 4xx and not stored.",
        "parameters": [
            {"name": "heatmap", "in": "query", "required": False,
             "description": "`png` adds a PNG overlay of the heatmap.",
             "schema": {"type": "string", "enum": ["png"]}},
            {"name": "condition", "in": "query", "required": False,
             "description": "`glaucoma` (default: a disc-centred crop, or a full-field photograph that the "
                            "service crops around the optic disc it finds; `no_disc_found` when none) or "
                            "`cataract` (the whole field; answers a 0-10 severity too). 404 `unknown_condition` "
                            "when no model serves it.",
             "schema": {"type": "string", "default": "glaucoma"}},
            IDEMPOTENCY_HEADER,
        ],
        "requestBody": {"required": True, "content": {
            **_image_bodies(),
            "multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                                               "properties": {"file": {"type": "string", "format": "binary"}}},
                                    "encoding": {"file": {"contentType": ", ".join(IMAGE_MEDIA_TYPES)}}},
            "application/json": {"schema": {"$ref": "#/components/schemas/S3KeyRequest"}},
        }},
        "responses": _responses(200, _json("Prediction", "The screening result, stored under `id`."),
                                400, 404, 409, 413, 415, 422),
    }},
    "/predict/batch": {"post": {
        "summary": "Screen several images",
        "description": f"multipart/form-data, every part a file with a filename, any field names, at most "
                       f"{resources.MAX_BATCH_IMAGES} images, {resources.MAX_BATCH_BYTES} bytes, {MAX_MULTIPART_PARTS} parts and field or file "
                       f"names of {MAX_FORM_NAME_CHARS} characters. A malformed request stores nothing; "
                       "otherwise every part is answered with its id and outcome (rejected images are "
                       "stored as `rejected`). With an Idempotency-Key a retry stores nothing twice.",
        "parameters": [{"name": "condition", "in": "query", "required": False,
                        "description": "As for POST /predict.", "schema": {"type": "string", "default": "glaucoma"}},
                       IDEMPOTENCY_HEADER],
        "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
            "type": "object", "required": ["images"],
            "properties": {"images": {"type": "array", "minItems": 1,  # more than the limit: 413
                                      "items": {"type": "string", "format": "binary"}}}}}}},
        "responses": _responses(200, _json("BatchResult", "One outcome per part, in order."),
                                400, 404, 409, 413, 415, 422, 503),
    }},
    "/predictions": {"get": {
        "summary": "Stored results, newest first",
        "parameters": [
            {"name": "limit", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 20}},
            {"name": "label", "in": "query", "required": False,
             "schema": {"type": "string", "enum": ["normal", "glaucoma"]}},
            {"name": "cursor", "in": "query", "required": False,
             "description": "`next_cursor` of the previous page of the same query.",
             "schema": {"type": "string", "minLength": 1, "maxLength": MAX_CURSOR_CHARS}},
        ],
        "responses": _responses(200, _json("PredictionList", "A page of results."), 400),
    }},
    "/predictions/{prediction_id}": {"get": {
        "summary": "One stored result",
        "parameters": [{"name": "prediction_id", "in": "path", "required": True,
                        "schema": {"type": "string", "pattern": "^[0-9a-f]{32}$"}}],
        "responses": _responses(200, _json("Prediction", "The stored result."), 404),
    }},
    "/status": {"get": {
        "summary": "Model, counts by label, queue depths, last prediction",
        "responses": _responses(200, _json("Status", "The service's state.")),
    }},
    "/uploads": {"post": {
        "summary": "A presigned S3 POST under incoming/ for large images",
        "description": "The policy fixes the key and the content type and bounds the size "
                       "(content-length-range) to the limit the S3 path enforces.",
        "requestBody": {"required": False, "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/UploadRequest"}}}},
        "responses": _responses(201, _json("Upload", "Where and how to upload."), 400, 413, 415),
    }},
    "/openapi.json": {"get": {
        "summary": "This document", "security": [],
        "responses": _responses(200, {"description": "OpenAPI 3.0",
                                      "content": {"application/json": {"schema": {"type": "object"}}}},
                                security=False),
    }},
    "/docs": {"get": {
        "summary": "Swagger UI for this document", "security": [],
        "responses": _responses(200, {"description": "HTML page",
                                      "content": {"text/html": {"schema": {"type": "string"}}}},
                                security=False),
    }},
    "/docs/{asset}": {"get": {
        "summary": "Swagger UI's scripts and styles, served from the package (no CDN)", "security": [],
        "parameters": [{"name": "asset", "in": "path", "required": True,
                        "schema": {"type": "string", "maxLength": 64}}],
        "responses": _responses(200, {"description": "A static asset", "content": {
            "application/javascript": {"schema": {"type": "string"}},
            "text/css": {"schema": {"type": "string"}}}}, 404, security=False),
    }},
}


def document(server_url: str | None = None) -> dict:
    """The OpenAPI document; `server_url` names where it is served (the stage's base URL)."""
    doc = {
        "openapi": "3.0.3",
        "info": {"title": "Glaucoma screening API", "version": "1.0.0",
                 "description": "Research and education use only; not a medical device. Every error is "
                                "JSON {error, message}."},
        "security": [{API_KEY_SCHEME: []}],
        "paths": PATHS,
        "components": {
            "securitySchemes": {API_KEY_SCHEME: {"type": "apiKey", "in": "header", "name": "x-api-key"}},
            "schemas": SCHEMAS,
            "responses": {f"E{status}": _error(text) for status, text in ERRORS.items()},
        },
    }
    if server_url:
        doc["servers"] = [{"url": server_url}]
    return doc


def allowed_methods(path: str) -> list[str]:
    """The methods a concrete path answers to (for 405's Allow); [] for an unknown path."""
    parts = path.rstrip("/").split("/") if path != "/" else [""]
    for template, operations in PATHS.items():
        template_parts = template.split("/")
        if len(template_parts) == len(parts) and all(
                t == p or (t.startswith("{") and t.endswith("}") and p) for t, p in zip(template_parts, parts)):
            return sorted(m.upper() for m in operations) + ["OPTIONS"]
    return []
