"""The retraining loop's API routes, a Powertools Router that api.py includes.

    POST /uploads/training          {label, site?, content_type} -> presigned PUT of a labelled image
    GET  /dataset                   counts per label, per source (base set, uploads) and per site
    POST /retrain                   {"hyperparameters": {name: "value"}}? -> 202 {training_job}; 409 when one runs
    GET  /retrain/{job}             status, progress (epoch of epochs), metrics, failure reason
    GET  /models                    registered versions with their gate decisions, and the current one
    POST /models/{version}/promote  point the condition at that version (rollback or forward)

Every route takes `?condition=` (default glaucoma).
"""

from __future__ import annotations

import json

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from handlers.runtime import logger, runtime
from screening import model_registry, retraining, tenancy
from screening.http_inputs import ApiError, parse_json_object, raw_body
from screening.training_contract import DEFAULT_CONDITION

router = APIGatewayRouter()


def ok(body: dict, status: int = 200) -> Response[dict]:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=json.dumps(body))


def valid_name(name: object) -> bool:
    """The registry's rule, and ASCII only (the document's pattern): names become S3 key segments."""
    return isinstance(name, str) and name.isascii() and model_registry.valid_name(name)


def condition() -> str:
    name = router.current_event.get_query_string_value("condition")
    if name is None:
        return DEFAULT_CONDITION
    if not valid_name(name):  # `?condition=` too: an empty name is no condition
        raise ApiError(400, "invalid_condition", "condition must be letters, digits, '-', '_' or '.'.")
    return name


def json_body() -> dict:
    event = router.current_event
    data = raw_body(event.body, event.is_base64_encoded, runtime().settings.max_api_body_bytes)
    return parse_json_object(data) if data.strip() else {}


def class_names(name: str) -> tuple[str, ...]:
    """The condition's labels come from its serving model's card."""
    try:
        return runtime().models.get(name).card.class_names
    except model_registry.UnknownCondition:
        raise ApiError(404, "unknown_condition", f"No model serves condition {name!r}.")


def caller_of(raw_event: dict) -> tenancy.Caller:
    """The clinic of this request's API key (tenancy: records, uploads and counts are per clinic)."""
    try:
        return tenancy.caller_from_event(raw_event, runtime().settings.api_key_clinics)
    except tenancy.UnknownApiKey as exc:
        raise ApiError(403, "unknown_api_key", str(exc))


def caller() -> tenancy.Caller:
    return caller_of(router.current_event.raw_event)


def require_admin() -> None:
    """Retraining and promotion change the model every clinic is served by: the admin key only."""
    if not caller().is_admin:
        raise ApiError(403, "admin_only", "Only the admin API key may retrain or promote models.")


def require_model_bucket() -> None:
    if not runtime().settings.model_bucket:
        raise ApiError(503, "no_model_bucket", "Retraining needs MODEL_BUCKET (the model registry).")


def training_jobs():
    """SageMaker on AWS; the local cloud's subprocess runner when TRAINING_RUNNER=local."""
    rt = runtime()
    if rt.settings.training_runner == "disabled":  # e.g. a fuzzing run against the local cloud
        raise ApiError(503, "retraining_disabled", "Training jobs are disabled here (TRAINING_RUNNER=disabled).")
    if rt.settings.training_runner == "local":
        from localcloud.training_jobs import LocalTrainingJobs  # only present in the local cloud

        return LocalTrainingJobs(rt.s3, rt.settings)
    import boto3

    from handlers.runtime import AWS_CONFIG

    return retraining.SageMakerJobs(boto3.client("sagemaker", config=AWS_CONFIG), rt.s3, rt.settings)


@router.post("/uploads/training", summary="A presigned PUT for one labelled training image")
def create_training_upload() -> Response[dict]:
    require_model_bucket()
    payload = json_body()
    name = condition()
    label, site = payload.get("label"), payload.get("site")
    media_type = payload.get("content_type", "image/jpeg")
    if not isinstance(label, str) or (site is not None and not isinstance(site, str)) \
            or not isinstance(media_type, str):
        raise ApiError(400, "invalid_upload", "Send {\"label\": ..., \"site\": ..., \"content_type\": ...}.")
    if site is not None and not valid_name(site):
        raise ApiError(400, "invalid_upload", "site must be 1-100 ASCII letters, digits, '-', '_' or '.'.")
    who = caller()
    if not who.is_admin:  # a clinic uploads for its own site only
        if site not in (None, who.clinic):
            raise ApiError(403, "foreign_site", f"This API key uploads for site {who.clinic} only.")
        site = who.clinic
    try:
        body = retraining.training_upload(runtime().s3, runtime().settings, name, label, site,
                                          media_type, class_names(name))
    except retraining.UploadRejected as exc:
        raise ApiError(400, "invalid_upload", str(exc))
    return ok(body, 201)


@router.get("/dataset", summary="Training data counts per label, source and site")
def dataset() -> Response[dict]:
    require_model_bucket()
    return ok(retraining.dataset_summary(runtime().s3, runtime().settings, condition()))


@router.post("/retrain", summary="Start a training job (one at a time)")
def start_retraining() -> Response[dict]:
    require_admin()
    require_model_bucket()
    name = condition()
    class_names(name)
    try:
        hyperparameters = retraining.validate_hyperparameters(json_body().get("hyperparameters"))
    except ValueError as exc:
        raise ApiError(400, "invalid_hyperparameters", str(exc))
    try:
        job = training_jobs().start(name, hyperparameters)
    except retraining.JobAlreadyRunning as exc:
        return ok({"error": "job_running", "message": str(exc), "training_job": exc.job}, 409)
    logger.info("training job started", extra={"job": job, "condition": name, "trigger": "api"})
    return ok({"training_job": job, "condition": name, "status": retraining.RUNNING}, 202)


@router.get("/retrain/<job>", summary="A training job's status, progress, metrics and failure reason")
def describe_retraining(job: str) -> Response[dict]:
    require_model_bucket()
    if not valid_name(job):
        raise ApiError(400, "invalid_job", "Not a training job name.")
    found = training_jobs().describe(job)
    if found is None:
        raise ApiError(404, "unknown_job", f"No training job {job}.")
    return ok(found)


@router.get("/models", summary="Registered model versions, their gate decisions, and the current one")
def list_models() -> Response[dict]:
    require_model_bucket()
    rt, name = runtime(), condition()
    pointer = model_registry.read_pointer(rt.s3, rt.settings.model_bucket, name)
    if pointer is None:  # read-only: the bundled model serves until the first job registers it
        bundled = model_registry.bundled_model_dir(rt.settings.model_dir, name)
        pointer = {"condition": name, "version": rt.models.get(name).version, "source": "bundled"} if bundled else None
    return ok({"condition": name, "current": pointer,
               "versions": model_registry.list_versions(rt.s3, rt.settings.model_bucket, name),
               "refresh_seconds": rt.settings.model_refresh_seconds})


@router.post("/models/<version>/promote", summary="Serve this version (rollback or roll forward)")
def promote_model(version: str) -> Response[dict]:
    require_admin()
    require_model_bucket()
    rt, name = runtime(), condition()
    if not valid_name(version):
        raise ApiError(400, "invalid_version", "Not a model version.")
    retraining.ensure_champion(rt.s3, rt.settings, name)
    try:
        pointer = model_registry.promote_version(rt.s3, rt.settings.model_bucket, name, version,
                                                 "promoted through the API")
    except model_registry.UnknownVersion as exc:
        raise ApiError(404, "unknown_version", str(exc))
    logger.info("model promoted", extra={"condition": name, "version": version})
    return ok({"current": pointer, "refresh_seconds": rt.settings.model_refresh_seconds})
