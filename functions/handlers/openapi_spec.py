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
    403: "Missing or wrong API key (answered by the gateway); `unknown_api_key` for a key no clinic "
         "holds, `admin_only` where only the admin key may act, `foreign_site` for another clinic's site.",
    404: "Nothing at this id, S3 key, condition, training job or model version.",
    409: "A request with this Idempotency-Key is still in progress.",
    413: "Over a size or count limit; `message` states the limit.",
    414: "The URL is longer than the gateway accepts.",
    415: "A content type this route does not accept.",
    422: "This Idempotency-Key was used with a different request.",
    429: "Throttled by the gateway's usage plan.",
    431: "The request's headers are larger than the gateway accepts.",
    500: "An unexpected fault; the request may be retried.",
    502: "The gateway got no valid answer from the function.",
    503: "Part of a batch could not be processed now (retry it with the same Idempotency-Key); "
         "`no_model_bucket` or `retraining_disabled` where retraining is not set up.",
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


# model_registry.valid_name, ASCII only: conditions, versions, sites and job names are S3 key segments.
NAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
CONDITION_QUERY = {"name": "condition", "in": "query", "required": False,
                   "description": "Which condition's model and data (cataract trains and serves the same way).",
                   "schema": {"type": "string", "pattern": NAME_PATTERN, "default": "glaucoma"}}


def _name_in_path(name: str, description: str) -> dict:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": {"type": "string", "pattern": NAME_PATTERN}}


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
            "queue_depth": {"type": "integer", "nullable": True,
                            "description": "Visible plus in-flight messages; read at most every 5 s."},
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
COUNTS = {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}}
SCHEMAS.update({
    "TrainingUploadRequest": {
        "type": "object", "required": ["label"],
        "description": "One labelled training image to come; a clinic's key uploads for its own site only.",
        "properties": {
            "label": {"type": "string", "description": "One of the condition's class names (glaucoma: "
                                                        "normal, glaucoma)."},
            "site": {"type": "string", "nullable": True, "pattern": NAME_PATTERN,
                     "description": "The site the image comes from; default: the caller's clinic."},
            "content_type": {"type": "string", "enum": list(IMAGE_MEDIA_TYPES), "default": "image/jpeg"},
        },
    },
    "TrainingUpload": {
        "type": "object", "required": ["upload_url", "method", "headers", "s3_key", "label", "site",
                                       "condition", "expires_in"],
        "description": "PUT the image to upload_url with these headers.",
        "properties": {"upload_url": {"type": "string"}, "method": {"type": "string", "enum": ["PUT"]},
                       "headers": {"type": "object", "additionalProperties": {"type": "string"}},
                       "s3_key": {"type": "string"}, "label": {"type": "string"}, "site": {"type": "string"},
                       "condition": {"type": "string"}, "expires_in": {"type": "integer"}},
    },
    "Dataset": {
        "type": "object", "required": ["condition", "total", "by_label", "by_source", "by_site"],
        "properties": {
            "condition": {"type": "string"}, "total": {"type": "integer", "minimum": 0}, "by_label": COUNTS,
            "by_source": {"type": "object", "required": ["base_set", "uploads"], "properties": {
                "base_set": {"type": "object", "required": ["total", "by_label"], "properties": {
                    "total": {"type": "integer", "minimum": 0}, "by_label": COUNTS,
                    "by_split": {"type": "object"}, "source": {"nullable": True}}},
                "uploads": {"type": "object", "required": ["total", "by_label", "by_site"], "properties": {
                    "total": {"type": "integer", "minimum": 0}, "by_label": COUNTS,
                    "by_site": {"type": "object", "additionalProperties": COUNTS}}}}},
            "by_site": {"type": "object", "additionalProperties": COUNTS},
        },
    },
    "RetrainRequest": {
        "type": "object",
        "properties": {"hyperparameters": {
            "type": "object", "nullable": True,
            "description": "Passed to the training job as strings (SageMaker's rule), e.g. {\"epochs\": \"5\"}.",
            "additionalProperties": {"anyOf": [{"type": "string"}, {"type": "number"}]}}},
    },
    "RetrainStarted": {
        "type": "object", "required": ["training_job", "condition", "status"],
        "properties": {"training_job": {"type": "string"}, "condition": {"type": "string"},
                       "status": {"type": "string", "enum": ["InProgress"]}},
    },
    "JobRunning": {
        "type": "object", "required": ["error", "message", "training_job"],
        "description": "`job_running`: one training job at a time; `training_job` names the running one.",
        "properties": {"error": {"type": "string", "enum": ["job_running"]}, "message": {"type": "string"},
                       "training_job": {"type": "string"}},
    },
    "TrainingJob": {
        "type": "object", "required": ["training_job", "status", "progress", "metrics"],
        "properties": {
            "training_job": {"type": "string"}, "condition": {"type": "string", "nullable": True},
            "status": {"type": "string", "description": "InProgress, Completed, Failed or Stopped."},
            "progress": {"type": "object", "properties": {
                "epoch": {"type": "integer", "minimum": 0}, "epochs": {"type": "integer", "nullable": True}}},
            "metrics": {"type": "object", "additionalProperties": {"type": "number"}},
            "failure_reason": {"type": "string", "nullable": True},
            "version": {"type": "string", "nullable": True}, "promoted": {"type": "boolean", "nullable": True},
            "decision": {"type": "object", "nullable": True}, "champion": {"nullable": True},
            "created_at": {"nullable": True},
        },
    },
    "ModelPointer": {
        "type": "object", "required": ["condition", "version"],
        "properties": {"condition": {"type": "string"}, "version": {"type": "string"},
                       "source": {"type": "string"}, "promoted_at": {"type": "string"},
                       "reason": {"type": "string"}, "previous": {"type": "string", "nullable": True}},
    },
    "ModelList": {
        "type": "object", "required": ["condition", "current", "versions", "refresh_seconds"],
        "properties": {
            "condition": {"type": "string"},
            "current": {"allOf": [{"$ref": "#/components/schemas/ModelPointer"}], "nullable": True},
            "versions": {"type": "array", "items": {"type": "object", "required": ["version"], "properties": {
                "version": {"type": "string"}, "created": {"type": "string", "nullable": True},
                "threshold": {"type": "number", "nullable": True},
                "class_names": {"type": "array", "nullable": True, "items": {"type": "string"}},
                "metrics": {"type": "object"}, "decision": {"type": "object", "nullable": True}}}},
            "refresh_seconds": {"type": "number"},
        },
    },
    "Promoted": {
        "type": "object", "required": ["current", "refresh_seconds"],
        "properties": {"current": {"$ref": "#/components/schemas/ModelPointer"},
                       "refresh_seconds": {"type": "number"}},
    },
})
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
            {"name": "heatmap", "in": "query", "required": False,
             "description": "`1` (or `true`) includes each record's heatmap; listings leave it out by default.",
             "schema": {"type": "string", "enum": ["0", "1", "false", "true"]}},
        ],
        "responses": _responses(200, _json("PredictionList", "A page of results."), 400),
    }},
    "/predictions/{prediction_id}": {"get": {
        "summary": "One stored result",
        "parameters": [{"name": "prediction_id", "in": "path", "required": True,
                        "schema": {"type": "string", "pattern": "^[0-9a-f]{32}$"}}],
        "responses": _responses(200, _json("Prediction", "The stored result."), 404),
    }},
    "/predictions/{prediction_id}/heatmap.png": {"get": {
        "summary": "One result's heatmap as a PNG image",
        "description": "The stored overlay for an S3-path prediction, else the heatmap alone (RGBA). "
                       "Only `ok` results have one.",
        "parameters": [{"name": "prediction_id", "in": "path", "required": True,
                        "schema": {"type": "string", "pattern": "^[0-9a-f]{32}$"}}],
        "responses": _responses(200, {"description": "A PNG image", "content": {
            "image/png": {"schema": {"type": "string", "format": "binary"}}}}, 404),
    }},
    "/uploads/training": {"post": {
        "summary": "A presigned PUT for one labelled training image",
        "parameters": [CONDITION_QUERY],
        "requestBody": {"required": True, "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/TrainingUploadRequest"}}}},
        "responses": _responses(201, _json("TrainingUpload", "Where and how to PUT the image."),
                                400, 404, 413, 503),
    }},
    "/dataset": {"get": {
        "summary": "Training data counts per label, source and site",
        "parameters": [CONDITION_QUERY],
        "responses": _responses(200, _json("Dataset", "The counts."), 400, 503),
    }},
    "/retrain": {"post": {
        "summary": "Start a training job (one at a time; the admin key only)",
        "description": "The new model replaces the current one only when it measures better.",
        "parameters": [CONDITION_QUERY],
        "requestBody": {"required": False, "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/RetrainRequest"}}}},
        "responses": {**_responses(202, _json("RetrainStarted", "The job started."), 400, 404, 413, 503),
                      "409": _json("JobRunning", "A training job is already running.")},
    }},
    "/retrain/{job}": {"get": {
        "summary": "A training job's status, progress, metrics and failure reason",
        "parameters": [_name_in_path("job", "`training_job` of POST /retrain.")],
        "responses": _responses(200, _json("TrainingJob", "The job's state."), 400, 404, 503),
    }},
    "/models": {"get": {
        "summary": "Registered model versions, their gate decisions, and the current one",
        "parameters": [CONDITION_QUERY],
        "responses": _responses(200, _json("ModelList", "The registry of this condition."), 400, 503),
    }},
    "/models/{version}/promote": {"post": {
        "summary": "Serve this version (rollback or roll forward; the admin key only)",
        "description": "No body. Workers pick the version up within `refresh_seconds`.",
        "parameters": [_name_in_path("version", "A `version` of GET /models."), CONDITION_QUERY],
        "responses": _responses(200, _json("Promoted", "The condition's new pointer."), 400, 404, 503),
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
