"""Retraining handlers: the schedule (and POST /retrain) starts a job; a finished job is filed.

`start_handler` serves EventBridge's schedule (event {"condition": ...} optional) and, when
API Gateway routes POST /retrain here (proxy event), the same routes as the API function
(handlers/api_retraining.py). `promote_handler` files a completed SageMaker job's model in
the registry; its gate (run inside the job) decided whether the pointer moves.
"""

from __future__ import annotations

import json

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types

from handlers.runtime import AWS_CONFIG, S3_CONFIG
from screening import resources
from screening.config import Settings
from screening.http_inputs import ApiError
from screening.retraining import JobAlreadyRunning, SageMakerJobs, condition_of_job, register_sagemaker_output
from screening.training_contract import DEFAULT_CONDITION

logger = Logger(service=resources.SERVICE_NAME)
_api = None


def api_app() -> APIGatewayRestResolver:
    global _api
    if _api is None:
        from handlers.api_retraining import router

        _api = APIGatewayRestResolver()
        _api.include_router(router)

        @_api.exception_handler(ApiError)
        def client_error(exc: ApiError) -> Response:
            return Response(exc.status, content_types.APPLICATION_JSON,
                            json.dumps({"error": exc.error, "message": exc.message}))
    return _api


@logger.inject_lambda_context(log_event=False)
def start_handler(event: dict, context) -> dict:
    if "httpMethod" in event:
        return api_app().resolve(event, context)
    settings = Settings.from_env()
    condition = event.get("condition") or DEFAULT_CONDITION
    jobs = SageMakerJobs(boto3.client("sagemaker", config=AWS_CONFIG), boto3.client("s3", config=S3_CONFIG),
                         settings)
    try:
        name = jobs.start(condition, {})
    except JobAlreadyRunning as exc:
        logger.info("scheduled retrain skipped: a job runs", extra={"job": exc.job})
        return {"training_job": None, "running": exc.job}
    logger.info("training job started", extra={"job": name, "trigger": "schedule"})
    return {"training_job": name}


@logger.inject_lambda_context(log_event=False)
def promote_handler(event: dict, context) -> dict:
    """EventBridge 'SageMaker Training Job State Change' (Completed) -> the registry."""
    detail = event.get("detail", {})
    job = detail.get("TrainingJobName", "")
    if detail.get("TrainingJobStatus") != "Completed" or condition_of_job(job) is None:
        return {"promoted": False, "reason": "not a completed screening training job"}
    registration = register_sagemaker_output(boto3.client("s3", config=S3_CONFIG), Settings.from_env(), job)
    logger.info("model registered", extra={"job": job, "version": registration.version,
                                           "promoted": registration.promoted, "reason": registration.reason})
    return {"version": registration.version, "promoted": registration.promoted, "reason": registration.reason}
