"""API Gateway (REST) handler: Powertools' resolver over the screening service."""

from __future__ import annotations

import json
import time
import uuid

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, CORSConfig, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import ClientError

from handlers.runtime import logger, metrics, runtime, warm_in_lambda
from screening import heatmap, resources, telemetry
from screening.http_inputs import (REJECTION_STATUS, ApiError, UploadedFile, header, parse_json_object,
                                   parse_multipart, raw_body)
from screening.preprocessing import ImageRejected
from screening.records import InvalidCursor, s3_record_id
from screening.service import ScreeningRequest, ScreeningResult
from screening.telemetry import record_outcomes

app = APIGatewayRestResolver(cors=CORSConfig(allow_origin="*", max_age=300,
                                             allow_headers=["x-api-key", "content-type"]))
PUBLIC_FIELDS = ("id", "status", "label", "probability", "confidence", "threshold", "model_version",
                 "latency_ms", "quality_flags", "created_at", "source", "key", "reason", "message",
                 "heatmap", "image")
IMAGE_TYPES = {"image/jpeg": ".jpg", "image/png": ".png", "image/tiff": ".tif", "image/webp": ".webp",
               "image/bmp": ".bmp"}


def error_response(status: int, error: str, message: str) -> Response[dict]:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON,
                    body=json.dumps({"error": error, "message": message}))


@app.exception_handler(ApiError)
def handle_api_error(exc: ApiError) -> Response[dict]:
    metrics.add_metric(name=telemetry.CLIENT_ERRORS, unit=MetricUnit.Count, value=1)
    logger.info("client error", extra={"error": exc.error, "status": exc.status})
    return error_response(exc.status, exc.error, exc.message)


@app.exception_handler(ImageRejected)
def handle_rejected_image(exc: ImageRejected) -> Response[dict]:
    return handle_api_error(ApiError.from_rejection(exc))


@app.not_found
def handle_not_found(exc: NotFoundError) -> Response[dict]:
    return error_response(404, "not_found", f"No route {app.current_event.http_method} {app.current_event.path}.")


def public(record: dict) -> dict:
    return {k: record[k] for k in PUBLIC_FIELDS if k in record}


def body_bytes() -> bytes:
    event = app.current_event
    return raw_body(event.body, event.is_base64_encoded, runtime().settings.max_api_body_bytes)


def content_type() -> str:
    return header(app.current_event.headers, "content-type").strip()


def want_png() -> bool:
    return (app.current_event.get_query_string_value("heatmap") or "").lower() == "png"


def respond_with(result: ScreeningResult, status: int = 200) -> Response[dict]:
    body = public(result.record)
    if result.rejected:
        reason = result.record["reason"]
        raise ApiError(REJECTION_STATUS.get(reason, 400), reason, result.record["message"])
    if want_png() and result.model_input is not None:
        body["heatmap_png_base64"] = heatmap.overlay_png_base64(result.model_input, result.cam)
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=json.dumps(body))


def screen_one(request: ScreeningRequest) -> ScreeningResult:
    # A synchronous client error is answered, not stored: the caller has no id to look it up by.
    [result] = runtime().service.screen_and_store([request], store_rejections=False)
    record_outcomes(metrics, [result.record])
    return result


def image_from_request() -> ScreeningRequest:
    """The image of POST /predict, whichever of the three accepted shapes it came in."""
    ctype = content_type().lower()
    if ctype.startswith("image/"):
        return ScreeningRequest(data=body_bytes(), source={"source": "api", "content_type": ctype.split(";")[0]})
    if ctype.startswith("multipart/form-data"):
        parts = [p for p in parse_multipart(body_bytes(), content_type()) if p.field == "file"]
        if not parts:
            raise ApiError(400, "missing_file", "The multipart body has no 'file' field.")
        return ScreeningRequest(data=parts[0].data, source={"source": "api"})
    if ctype.startswith("application/json"):
        return image_from_s3_key(parse_json_object(body_bytes()))
    if not ctype:
        raise ApiError(415, "missing_content_type",
                       "Send the image with an image/* content type, as multipart field 'file', "
                       "or JSON {\"s3_key\": ...}.")
    raise ApiError(415, "unsupported_content_type", f"Content type {ctype.split(';')[0]} is not accepted.")


def image_from_s3_key(payload: dict) -> ScreeningRequest:
    """An object under incoming/; its record id is the S3 path's, so it is screened once."""
    key = payload.get("s3_key")
    if not isinstance(key, str) or not key:
        raise ApiError(400, "missing_s3_key", "The JSON body needs a string field 's3_key'.")
    if not key.startswith(resources.INCOMING_PREFIX) or ".." in key:
        raise ApiError(400, "invalid_s3_key", f"s3_key must lie under {resources.INCOMING_PREFIX}.")
    settings = runtime().settings
    try:
        obj = runtime().s3.get_object(Bucket=settings.image_bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
            raise ApiError(404, "unknown_s3_key", f"No object {key} in the image bucket.")
        raise
    if obj["ContentLength"] > settings.max_image_bytes:  # checked before the body is read
        obj["Body"].close()
        raise ApiError(413, "too_large", f"The object is {obj['ContentLength']} bytes; "
                                         f"the limit is {settings.max_image_bytes}.")
    data = obj["Body"].read()
    etag = obj["ETag"].strip('"')
    return ScreeningRequest(data=data, record_id=s3_record_id(settings.image_bucket, key, etag),
                            source={"source": "api", "bucket": settings.image_bucket, "key": key, "etag": etag})


@app.post("/predict", summary="Screen one image",
          description="Raw image body (image/*), multipart field 'file', or JSON {\"s3_key\": \"incoming/...\"}. "
                      "Add ?heatmap=png for a PNG overlay.")
def predict() -> Response[dict]:
    request = image_from_request()
    existing = runtime().service.store.get(request.record_id) if "key" in request.source else None
    if existing:  # the S3 path (or an earlier call) already screened this object
        return respond_with(ScreeningResult(existing))
    return respond_with(screen_one(request))


@app.post("/predict/batch", summary="Screen several images (multipart, any field names)")
def predict_batch() -> Response[dict]:
    settings = runtime().settings
    if not content_type().lower().startswith("multipart/form-data"):
        raise ApiError(415, "unsupported_content_type", "Send the images as multipart/form-data.")
    data = body_bytes()
    if len(data) > settings.max_batch_bytes:
        raise ApiError(413, "batch_too_large",
                       f"The batch is {len(data)} bytes; the limit is {settings.max_batch_bytes} bytes.")
    files: list[UploadedFile] = [p for p in parse_multipart(data, content_type()) if p.filename or p.data]
    if not files:
        raise ApiError(400, "missing_file", "The multipart body holds no images.")
    if len(files) > settings.max_batch_images:
        raise ApiError(413, "too_many_images",
                       f"The batch has {len(files)} images; the limit is {settings.max_batch_images}.")
    requests = [ScreeningRequest(data=f.data, source={"source": "api-batch", "field": f.field})
                for f in files]
    results = runtime().service.screen_and_store(requests)
    record_outcomes(metrics, [r.record for r in results])
    return Response(200, content_types.APPLICATION_JSON,
                    json.dumps({"results": [public(r.record) for r in results]}))


@app.get("/predictions/<prediction_id>", summary="One stored result")
def get_prediction(prediction_id: str) -> Response[dict]:
    record = runtime().service.store.get(prediction_id) if prediction_id != resources.COUNTERS_ID else None
    if record is None:
        raise ApiError(404, "unknown_id", f"No prediction with id {prediction_id}.")
    return Response(200, content_types.APPLICATION_JSON, json.dumps(public(record)))


@app.get("/predictions", summary="Stored results, newest first (?limit=1..100&label=&cursor=&heatmap=1)")
def list_predictions() -> Response[dict]:
    event = app.current_event
    raw_limit = event.get_query_string_value("limit") or "20"
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 100:
        raise ApiError(400, "invalid_limit", "limit must be an integer from 1 to 100.")
    label = event.get_query_string_value("label")
    if label is not None and label not in ("normal", "glaucoma"):
        raise ApiError(400, "invalid_label", "label must be 'normal' or 'glaucoma'.")
    try:
        items, cursor = runtime().service.store.list_recent(
            int(raw_limit), label, event.get_query_string_value("cursor"),
            include_heatmap=(event.get_query_string_value("heatmap") or "").lower() in ("1", "true"))
    except InvalidCursor as exc:
        raise ApiError(400, "invalid_cursor", str(exc))
    return Response(200, content_types.APPLICATION_JSON,
                    json.dumps({"items": [public(i) for i in items], "next_cursor": cursor}))


@app.get("/status", summary="Model, counts by label, queue depths, last prediction")
def status() -> Response[dict]:
    rt = runtime()
    body = {"model_version": rt.model.version, "threshold": rt.model.threshold,
            "model_metrics": rt.model.card.metrics, **rt.service.store.counters(),
            "queue_depth": queue_depth(rt.settings.queue_url),
            "dead_letter_depth": queue_depth(rt.settings.dead_letter_queue_url)}
    return Response(200, content_types.APPLICATION_JSON, json.dumps(body))


def queue_depth(queue_url: str) -> int | None:
    if not queue_url:
        return None
    attrs = runtime().sqs.get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages",
                                            "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


@app.post("/uploads", summary="A presigned S3 PUT URL under incoming/ for large images")
def create_upload() -> Response[dict]:
    data = body_bytes()
    payload = parse_json_object(data) if data.strip() else {}
    ctype = payload.get("content_type", "image/jpeg")
    if ctype not in IMAGE_TYPES:
        raise ApiError(400, "invalid_content_type", f"content_type must be one of {', '.join(IMAGE_TYPES)}.")
    settings = runtime().settings
    key = f"{resources.INCOMING_PREFIX}{uuid.uuid4().hex}{IMAGE_TYPES[ctype]}"
    url = runtime().s3.generate_presigned_url(
        "put_object", Params={"Bucket": settings.image_bucket, "Key": key, "ContentType": ctype},
        ExpiresIn=settings.presigned_url_seconds)
    body = {"upload_url": url, "method": "PUT", "headers": {"Content-Type": ctype}, "s3_key": key,
            "expires_in": settings.presigned_url_seconds}
    return Response(201, content_types.APPLICATION_JSON, json.dumps(body))


@app.get("/openapi.json", summary="This API's OpenAPI document")
def openapi() -> Response[dict]:
    schema = app.get_openapi_json_schema(title="Glaucoma screening API", version="1.0.0",
                                         description="Research and education use only; not a medical device.")
    return Response(200, content_types.APPLICATION_JSON, schema)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, log_event=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict, context) -> dict:
    started = time.perf_counter()
    response = app.resolve(event, context)
    metrics.add_metric(name=telemetry.API_LATENCY, unit=MetricUnit.Milliseconds,
                       value=(time.perf_counter() - started) * 1000)
    return response


warm_in_lambda()
