"""API Gateway (REST) handler: Powertools' resolver over the screening service.

Every answer that is not a success is JSON {error, message}. A POST with an
`Idempotency-Key` header goes through Powertools' idempotency utility (records
in the results table, expiring through its TTL attribute), and the records it
writes get ids derived from the key, so even a retry after a crash between
storing and answering stores nothing twice.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from functools import lru_cache

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, CORSConfig, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency import (DynamoDBPersistenceLayer, IdempotencyConfig,
                                                         idempotent_function)
from aws_lambda_powertools.utilities.idempotency.exceptions import (IdempotencyAlreadyInProgressError,
                                                                    IdempotencyValidationError)
from botocore.exceptions import ClientError

from handlers import openapi_spec
from handlers.runtime import AWS_CONFIG, logger, metrics, runtime, warm_in_lambda
from screening import heatmap, resources, telemetry, tenancy
from screening.config import Settings
from screening.http_inputs import (CONTROL_CHARACTERS, REJECTION_STATUS, ApiError, UploadedFile, check_cursor,
                                   header, idempotency_key, parse_json_object, parse_limit, parse_multipart,
                                   raw_body)
from handlers.api_retraining import condition
from handlers.api_retraining import caller_of
from handlers.api_retraining import router as retraining_router
from screening.model_registry import UnknownCondition
from screening.preprocessing import ImageRejected
from screening.records import InvalidCursor, s3_record_id
from screening.service import ScreeningRequest, ScreeningResult
from screening.telemetry import record_outcomes

# CORS: the web page's origin when deployed (CORS_ALLOW_ORIGIN, set by the stack).
app = APIGatewayRestResolver(cors=CORSConfig(allow_origin=Settings.from_env().cors_allow_origin, max_age=300,
                                             allow_headers=["x-api-key", "content-type", "idempotency-key"]))
PUBLIC_FIELDS = ("id", "status", "label", "probability", "confidence", "threshold", "model_version",
                 "latency_ms", "quality_flags", "created_at", "source", "key", "reason", "message",
                 "heatmap", "image", "condition", "severity", "cropped", "crop_box", "disc")
app.include_router(retraining_router)  # issue 8: uploads/training, dataset, retrain, models
IMAGE_TYPES = {"image/jpeg": ".jpg", "image/png": ".png", "image/tiff": ".tif", "image/webp": ".webp",
               "image/bmp": ".bmp"}
RECORD_ID = re.compile(r"[0-9a-f]{32}")
MAX_S3_KEY_BYTES = 1024
IDEMPOTENCY_EXPIRY_SECONDS = 24 * 3600
# Swagger UI's files, served from the swagger-ui-bundle package: /docs works offline.
DOCS_ASSETS = {"swagger-ui.css": "text/css", "swagger-ui-bundle.js": "application/javascript"}
DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Glaucoma screening API</title>
<link rel="stylesheet" href="docs/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="docs/swagger-ui-bundle.js"></script>
<script>window.ui = SwaggerUIBundle({url: "openapi.json", dom_id: "#swagger-ui"});</script>
</body></html>
"""


class PartialBatchFailure(Exception):
    """Some parts of a batch could not be processed now: answer 503 with every part's outcome."""

    def __init__(self, parts: list[dict]) -> None:
        super().__init__("part of the batch failed")
        self.parts = parts


def error_response(status: int, error: str, message: str, headers: dict | None = None,
                   **extra) -> Response[dict]:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON,
                    body=json.dumps({"error": error, "message": message, **extra}), headers=headers)


@app.exception_handler(ApiError)
def handle_api_error(exc: ApiError) -> Response[dict]:
    metrics.add_metric(name=telemetry.CLIENT_ERRORS, unit=MetricUnit.Count, value=1)
    logger.info("client error", extra={"error": exc.error, "status": exc.status})
    return error_response(exc.status, exc.error, exc.message)


@app.exception_handler(ImageRejected)
def handle_rejected_image(exc: ImageRejected) -> Response[dict]:
    return handle_api_error(ApiError.from_rejection(exc))


@app.exception_handler(IdempotencyAlreadyInProgressError)
def handle_in_progress(exc: Exception) -> Response[dict]:
    return handle_api_error(ApiError(409, "request_in_progress",
                                     "A request with this Idempotency-Key is still being processed."))


@app.exception_handler(IdempotencyValidationError)
def handle_key_reuse(exc: Exception) -> Response[dict]:
    return handle_api_error(ApiError(422, "idempotency_key_reused",
                                     "This Idempotency-Key was used for a different request."))


@app.exception_handler(PartialBatchFailure)
def handle_partial_batch(exc: PartialBatchFailure) -> Response[dict]:
    return error_response(503, "partial_failure", "Some images could not be processed now; retry the "
                                                  "request with the same Idempotency-Key.", results=exc.parts)


@app.exception_handler(Exception)
def handle_unexpected(exc: Exception) -> Response[dict]:
    logger.exception("unexpected error")
    return error_response(500, "internal_error", "An unexpected error occurred; the request may be retried.")


@app.not_found
def handle_not_found(exc: NotFoundError) -> Response[dict]:
    event = app.current_event
    allowed = openapi_spec.allowed_methods(event.path)
    if allowed:
        return error_response(405, "method_not_allowed", f"{event.http_method} is not allowed on {event.path}.",
                              headers={"Allow": ", ".join(allowed)})
    return error_response(404, "not_found", f"No route {event.http_method} {event.path}.")


def caller() -> tenancy.Caller:
    return caller_of(app.current_event.raw_event)


def clinic_field() -> dict:
    clinic = caller().clinic
    return {"clinic": clinic} if clinic else {}


def public(record: dict) -> dict:
    return {k: record[k] for k in PUBLIC_FIELDS if k in record}


def body_bytes() -> bytes:
    event = app.current_event
    return raw_body(event.body, event.is_base64_encoded, runtime().settings.max_api_body_bytes)


def content_type() -> str:
    return header(app.current_event.headers, "content-type").strip()


def want_png() -> bool:
    value = app.current_event.get_query_string_value("heatmap")
    if value is not None and value != "png":
        raise ApiError(400, "invalid_heatmap", "heatmap may only be 'png'.")
    return value == "png"


def json_response(status: int, body: dict, headers: dict | None = None) -> Response[dict]:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=json.dumps(body),
                    headers=headers)


# ---- idempotency -----------------------------------------------------------------------------

def caller_id() -> str:
    """Who is calling, without keeping their API key: idempotency keys are scoped per caller."""
    event = app.current_event
    api_key = event.request_context.identity.api_key or header(event.headers, "x-api-key")
    return hashlib.sha256((api_key or "anonymous").encode()).hexdigest()[:16]


def derived_id(scope: str | None, part: int = 0) -> str:
    """A fresh id, or (with an idempotency scope) the same id on every retry of the request."""
    if scope is None:
        return uuid.uuid4().hex
    return hashlib.sha256(f"{scope}\n{part}".encode()).hexdigest()[:32]


def mark_replay(response: dict, idempotent_data) -> dict:
    return {**response, "replayed": True}


IDEMPOTENCY_CONFIG = IdempotencyConfig(
    event_key_jmespath="[route, caller, key]", payload_validation_jmespath="payload",
    raise_on_no_idempotency_key=True, expires_after_seconds=IDEMPOTENCY_EXPIRY_SECONDS,
    response_hook=mark_replay)


@lru_cache(maxsize=4)
def idempotent_runner(results_table: str):
    """The routes' work behind Powertools' idempotency, persisted in the results table.

    Its items share the table's key (`id`) and TTL attribute; the other attribute names are
    prefixed so that they never look like a result record (they are in no index either).
    """
    persistence = DynamoDBPersistenceLayer(
        table_name=results_table, key_attr=resources.TABLE_PARTITION_KEY,
        expiry_attr=resources.TTL_ATTRIBUTE, in_progress_expiry_attr="idempotency_in_progress_expiry",
        status_attr="idempotency_status", data_attr="idempotency_response",
        validation_key_attr="idempotency_validation", boto_config=AWS_CONFIG)

    @idempotent_function(data_keyword_argument="request", persistence_store=persistence,
                         config=IDEMPOTENCY_CONFIG)
    def run_once(request: dict) -> dict:
        return IDEMPOTENT_ROUTES[request["route"]](request["scope"])

    return run_once


def answer(route: str) -> Response[dict]:
    """Run a POST route once per Idempotency-Key; without the header, just run it."""
    key = idempotency_key(app.current_event.headers)
    if key is None:
        outcome = IDEMPOTENT_ROUTES[route](None)
    else:
        caller = caller_id()
        event = app.current_event
        fingerprint = hashlib.sha256()
        for piece in (content_type().encode(), json.dumps(event.query_string_parameters or {},
                                                           sort_keys=True).encode(), body_bytes()):
            fingerprint.update(hashlib.sha256(piece).digest())
        scope = hashlib.sha256(f"{caller}\n{route}\n{key}".encode()).hexdigest()
        outcome = idempotent_runner(runtime().settings.results_table)(request={
            "route": route, "caller": caller, "key": key, "scope": scope, "payload": fingerprint.hexdigest()})
    headers = {"Idempotent-Replayed": "true"} if outcome.get("replayed") else None
    return json_response(outcome["status"], outcome["body"], headers)


# ---- POST /predict ---------------------------------------------------------------------------

def condition_service():
    """The service of `?condition=` (default glaucoma); 404 unknown_condition when no model serves it."""
    name = condition()
    try:
        return runtime().service_for(name)
    except UnknownCondition:
        raise ApiError(404, "unknown_condition", f"No model serves condition {name!r}.")


def screen_one(request: ScreeningRequest) -> ScreeningResult:
    """Screen and store one image; a synchronous client error is answered, not stored."""
    [result] = condition_service().screen_and_store([request], store_rejections=False)
    if result.failed or result.error is not None:
        raise RuntimeError(f"screening failed: {type(result.error).__name__}")
    if result.stored:
        record_outcomes(metrics, [result.record])
    elif result.stored is False:  # stored by an earlier try of this request: answer with that record
        result.record = runtime().service.store.get(request.record_id) or result.record
    return result


def image_from_request(scope: str | None) -> ScreeningRequest:
    """The image of POST /predict, whichever of the three accepted shapes it came in."""
    ctype = content_type().lower()
    record_id = derived_id(scope)
    if ctype.startswith("image/"):
        return ScreeningRequest(data=body_bytes(), record_id=record_id,
                                source={"source": "api", "content_type": ctype.split(";")[0][:64],
                                        **clinic_field()})
    if ctype.startswith("multipart/form-data"):
        parts = [p for p in parse_multipart(body_bytes(), content_type()) if p.field == "file"]
        if not parts:
            raise ApiError(400, "missing_file", "The multipart body has no 'file' field.")
        if len(parts) > 1:
            raise ApiError(400, "too_many_files", "Send one 'file' field; POST /predict/batch takes several.")
        return ScreeningRequest(data=parts[0].data, record_id=record_id, source={"source": "api", **clinic_field()})
    if ctype.startswith("application/json"):
        return image_from_s3_key(parse_json_object(body_bytes(), allowed_fields=frozenset({"s3_key"})))
    if not ctype:
        raise ApiError(415, "missing_content_type",
                       "Send the image with an image/* content type, as multipart field 'file', "
                       "or JSON {\"s3_key\": ...}.")
    raise ApiError(415, "unsupported_content_type", f"Content type {ctype.split(';')[0][:64]} is not accepted.")


def checked_s3_key(payload: dict) -> str:
    key = payload.get("s3_key")
    if not isinstance(key, str) or not key:
        raise ApiError(400, "missing_s3_key", "The JSON body needs a string field 's3_key'.")
    if (not key.startswith(resources.INCOMING_PREFIX) or ".." in key or key.endswith("/")
            or CONTROL_CHARACTERS.search(key) or len(key.encode("utf-8", "surrogatepass")) > MAX_S3_KEY_BYTES):
        raise ApiError(400, "invalid_s3_key", f"s3_key must name an object under {resources.INCOMING_PREFIX} "
                                              f"(at most {MAX_S3_KEY_BYTES} bytes, no control characters).")
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError(400, "invalid_s3_key", "s3_key is not valid Unicode.")
    return key


def image_from_s3_key(payload: dict) -> ScreeningRequest:
    """An object under incoming/; its record id is the S3 path's, so it is screened once."""
    key = checked_s3_key(payload)
    settings = runtime().settings
    if not tenancy.owns_key(caller(), key):  # another clinic's upload: as if it did not exist
        raise ApiError(404, "unknown_s3_key", f"No object {key} in the image bucket.")
    try:
        obj = runtime().s3.get_object(Bucket=settings.image_bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
            raise ApiError(404, "unknown_s3_key", f"No object {key[:200]} in the image bucket.")
        raise
    if obj["ContentLength"] > settings.max_image_bytes:  # checked before the body is read
        obj["Body"].close()
        raise ApiError(413, "too_large", f"The object is {obj['ContentLength']} bytes; "
                                         f"the limit is {settings.max_image_bytes}.")
    data = obj["Body"].read()
    etag = obj["ETag"].strip('"')
    return ScreeningRequest(data=data, record_id=s3_record_id(settings.image_bucket, key, etag),
                            source={"source": "api", "bucket": settings.image_bucket, "key": key, "etag": etag,
                                    **clinic_field()})


def predict_outcome(scope: str | None) -> dict:
    png = want_png()  # checked before any work
    request = image_from_request(scope)
    existing = runtime().service.store.get(request.record_id) if "key" in request.source else None
    result = ScreeningResult(existing) if existing else screen_one(request)
    if result.rejected:  # the S3 path (or an earlier call) may have rejected this object
        reason = result.record["reason"]
        raise ApiError(REJECTION_STATUS.get(reason, 400), reason, result.record["message"])
    body = public(result.record)
    if png and result.model_input is not None:
        body["heatmap_png_base64"] = heatmap.overlay_png_base64(result.model_input, result.cam)
    return {"status": 200, "body": body}


@app.post("/predict", summary="Screen one image")
def predict() -> Response[dict]:
    return answer("predict")


# ---- POST /predict/batch ---------------------------------------------------------------------

def batch_files() -> list[UploadedFile]:
    """The batch's images; every request-level check passes before anything is screened or stored."""
    settings = runtime().settings
    if not content_type().lower().startswith("multipart/form-data"):
        raise ApiError(415, "unsupported_content_type", "Send the images as multipart/form-data.")
    data = body_bytes()
    if len(data) > settings.max_batch_bytes:
        raise ApiError(413, "batch_too_large",
                       f"The batch is {len(data)} bytes; the limit is {settings.max_batch_bytes} bytes.")
    files = parse_multipart(data, content_type())
    unnamed = [p.field for p in files if not p.filename]
    if unnamed:  # a text field is no image: refuse the request rather than guess
        raise ApiError(400, "missing_filename", f"Every part must be a file with a filename; "
                                                f"field {unnamed[0][:64]!r} has none.")
    if len(files) > settings.max_batch_images:
        raise ApiError(413, "too_many_images",
                       f"The batch has {len(files)} images; the limit is {settings.max_batch_images}.")
    return files


def batch_outcome(scope: str | None) -> dict:
    """One outcome per part, named by index, field and file name; 503 if any part must be retried."""
    files = batch_files()
    service = condition_service()
    requests = [ScreeningRequest(data=f.data, record_id=derived_id(scope, i),
                                 source={"source": "api-batch", "field": f.field, **clinic_field()})
                for i, f in enumerate(files)]
    results = service.screen_and_store(requests)
    record_outcomes(metrics, [r.record for r in results if r.stored])
    parts, any_failed = [], False
    for i, (f, result) in enumerate(zip(files, results)):
        part = {"index": i, "field": f.field, "filename": f.filename}
        if result.failed or result.error is not None:
            any_failed = True
            parts.append({"part": part, "id": result.record["id"], "status": "failed", "error": "internal_error",
                          "message": "This image could not be processed now; retry it."})
            continue
        record = result.record if result.stored else (service.store.get(result.record["id"]) or result.record)
        parts.append({"part": part, **public(record)})
    if any_failed:
        raise PartialBatchFailure(parts)
    return {"status": 200, "body": {"results": parts}}


@app.post("/predict/batch", summary="Screen several images (multipart, any field names)")
def predict_batch() -> Response[dict]:
    return answer("batch")


IDEMPOTENT_ROUTES = {"predict": predict_outcome, "batch": batch_outcome}


# ---- reads -----------------------------------------------------------------------------------

@app.get("/predictions/<prediction_id>", summary="One stored result")
def get_prediction(prediction_id: str) -> Response[dict]:
    # Ids are 32 hex digits; anything else names nothing (nor the counters or idempotency items).
    record = runtime().service.store.get(prediction_id) if RECORD_ID.fullmatch(prediction_id) else None
    if record is None or not tenancy.can_see(caller(), record):  # another clinic's record is a 404
        raise ApiError(404, "unknown_id", f"No prediction with id {prediction_id[:64]}.")
    return json_response(200, public(record))


@app.get("/predictions/<prediction_id>/heatmap.png", summary="One result's heatmap as a PNG image")
def get_heatmap_png(prediction_id: str) -> Response[bytes]:
    rt = runtime()
    record = rt.service.store.get(prediction_id) if RECORD_ID.fullmatch(prediction_id) else None
    if record is None or record.get("status") != "ok" or not tenancy.can_see(caller(), record):
        raise ApiError(404, "unknown_id", f"No screened prediction with id {prediction_id}.")
    png = heatmap.png_for_record(rt.s3, rt.settings.image_bucket, record)
    return Response(200, "image/png", png, headers={"Cache-Control": "private, max-age=3600"})


@app.get("/predictions", summary="Stored results, newest first (?limit=1..100&label=&cursor=&heatmap=1)")
def list_predictions() -> Response[dict]:
    event = app.current_event
    heatmap_flag = (event.get_query_string_value("heatmap") or "0").lower()
    if heatmap_flag not in ("0", "1", "false", "true"):  # checked before any work, as /predict does
        raise ApiError(400, "invalid_heatmap", "heatmap may only be 0, 1, false or true.")
    limit = parse_limit(event.get_query_string_value("limit"))
    label = event.get_query_string_value("label")
    if label is not None and label not in ("normal", "glaucoma"):
        raise ApiError(400, "invalid_label", "label must be 'normal' or 'glaucoma'.")
    clinic = caller().clinic
    _, *partition = tenancy.listing_query(clinic, label)
    cursor = check_cursor(event.get_query_string_value("cursor"), *partition)
    try:
        items, next_cursor = runtime().service.store.list_recent(
            limit, label, cursor, clinic=clinic,
            include_heatmap=heatmap_flag in ("1", "true"))
    except InvalidCursor as exc:
        raise ApiError(400, "invalid_cursor", str(exc))
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ValidationException" and cursor:
            raise ApiError(400, "invalid_cursor", "The cursor is not one this API returned for this query.")
        raise
    return json_response(200, {"items": [public(i) for i in items], "next_cursor": next_cursor})


@app.get("/status", summary="Model, counts by label, queue depths, last prediction")
def status() -> Response[dict]:
    rt = runtime()
    body = {"model_version": rt.model.version, "threshold": rt.model.threshold,
            "model_metrics": rt.model.card.metrics, **rt.service.store.counters(caller().clinic),
            "queue_depth": queue_depth(rt.settings.queue_url),
            "dead_letter_depth": queue_depth(rt.settings.dead_letter_queue_url)}
    return json_response(200, body)


QUEUE_DEPTH_MAX_AGE_S = 5.0  # SQS's own depths are approximate; a dashboard polling /status needs no fresher
_queue_depths: dict[str, tuple[float, int]] = {}  # queue URL -> (when read, depth), per container


def queue_depth(queue_url: str) -> int | None:
    """Visible plus in-flight messages, read at most every QUEUE_DEPTH_MAX_AGE_S per container:
    two SQS calls per /status otherwise cost more than the counters themselves."""
    if not queue_url:
        return None
    now = time.monotonic()
    cached = _queue_depths.get(queue_url)
    if cached and now - cached[0] < QUEUE_DEPTH_MAX_AGE_S:
        return cached[1]
    attrs = runtime().sqs.get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages",
                                            "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    depth = int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])
    _queue_depths[queue_url] = (now, depth)
    return depth


# ---- POST /uploads ---------------------------------------------------------------------------

@app.post("/uploads", summary="A presigned S3 POST under incoming/ for large images")
def create_upload() -> Response[dict]:
    """A presigned POST (not PUT): its policy fixes key and content type and bounds the size."""
    data = body_bytes()
    payload = {}
    if data:  # an empty body asks for the defaults; whitespace is malformed JSON
        if not content_type().lower().startswith("application/json"):
            raise ApiError(415, "unsupported_content_type", "Send the upload request as application/json.")
        payload = parse_json_object(data, allowed_fields=frozenset({"content_type"}))
    ctype = payload.get("content_type", "image/jpeg")
    if not isinstance(ctype, str) or ctype not in IMAGE_TYPES:
        raise ApiError(400, "invalid_content_type", f"content_type must be one of {', '.join(IMAGE_TYPES)}.")
    settings = runtime().settings
    max_bytes = settings.max_image_bytes  # what the S3 path accepts; larger would only be rejected there
    key = f"{tenancy.upload_prefix(caller())}{uuid.uuid4().hex}{IMAGE_TYPES[ctype]}"
    post = runtime().s3.generate_presigned_post(
        Bucket=settings.image_bucket, Key=key, Fields={"Content-Type": ctype},
        Conditions=[{"Content-Type": ctype}, ["content-length-range", 1, max_bytes]],
        ExpiresIn=settings.presigned_url_seconds)
    body = {"upload_url": post["url"], "method": "POST", "fields": post["fields"], "s3_key": key,
            "expires_in": settings.presigned_url_seconds, "max_bytes": max_bytes}
    return json_response(201, body)


# ---- the contract ----------------------------------------------------------------------------

@app.get("/openapi.json", summary="This API's OpenAPI document")
def openapi() -> Response[dict]:
    return json_response(200, openapi_spec.document())


@app.get("/docs", summary="Swagger UI")
def docs_page() -> Response[str]:
    return Response(200, "text/html; charset=utf-8", DOCS_PAGE)


@app.get("/docs/<asset>", summary="Swagger UI's assets")
def docs_asset(asset: str) -> Response[str]:
    if asset not in DOCS_ASSETS:
        raise ApiError(404, "not_found", f"No documentation asset {asset[:64]}.")
    return Response(200, DOCS_ASSETS[asset], swagger_asset(asset),
                    headers={"Cache-Control": "public, max-age=86400"})


@lru_cache(maxsize=len(DOCS_ASSETS))
def swagger_asset(name: str) -> str:
    from swagger_ui_bundle import swagger_ui_path

    return (swagger_ui_path / name).read_text(encoding="utf-8")


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, log_event=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict, context) -> dict:
    started = time.perf_counter()
    IDEMPOTENCY_CONFIG.register_lambda_context(context)
    response = app.resolve(event, context)
    metrics.add_metric(name=telemetry.API_LATENCY, unit=MetricUnit.Milliseconds,
                       value=(time.perf_counter() - started) * 1000)
    return response


warm_in_lambda()
