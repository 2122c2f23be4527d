"""Retraining handlers: start a training job (schedule or POST /retrain), promote its model."""

from __future__ import annotations

import json

import boto3
from aws_lambda_powertools import Logger

from handlers.runtime import AWS_CONFIG, S3_CONFIG
from screening import resources, tenancy
from screening.config import Settings
from screening.retraining import JOB_NAME_PREFIX, promote_if_better, start_training

logger = Logger(service=resources.SERVICE_NAME)


@logger.inject_lambda_context(log_event=False)
def start_handler(event: dict, context) -> dict:
    """EventBridge schedule, or API Gateway's POST /retrain (proxy event) with optional
    JSON hyperparameters, e.g. {"epochs": "100"}."""
    settings = Settings.from_env()
    from_api = "httpMethod" in event
    if from_api and not _is_admin(event, settings):  # tenancy: retraining serves every clinic
        return _api(403, {"error": "admin_only", "message": "Only the admin API key may start retraining."})
    hyperparameters = {}
    if from_api and event.get("body"):
        try:
            hyperparameters = json.loads(event["body"]).get("hyperparameters", {})
            if not isinstance(hyperparameters, dict):
                raise ValueError
        except (ValueError, AttributeError):
            return _api(400, {"error": "malformed_json",
                              "message": "Send {\"hyperparameters\": {name: value}} or no body."})
    name = start_training(boto3.client("sagemaker", config=AWS_CONFIG), settings, hyperparameters)
    logger.info("training job started", extra={"job": name, "trigger": "api" if from_api else "schedule"})
    return _api(202, {"training_job": name}) if from_api else {"training_job": name}


@logger.inject_lambda_context(log_event=False)
def promote_handler(event: dict, context) -> dict:
    """EventBridge 'SageMaker Training Job State Change' (Completed) -> compare and promote."""
    detail = event.get("detail", {})
    job = detail.get("TrainingJobName", "")
    if detail.get("TrainingJobStatus") != "Completed" or not job.startswith(JOB_NAME_PREFIX):
        return {"promoted": False, "reason": "not a completed glaucoma training job"}
    decision = promote_if_better(boto3.client("s3", config=S3_CONFIG), Settings.from_env(), job)
    logger.info("promotion decision", extra={"job": job, "promoted": decision.promote, "reason": decision.reason})
    return {"promoted": decision.promote, "reason": decision.reason}


def _is_admin(event: dict, settings: Settings) -> bool:
    try:
        return tenancy.caller_from_event(event, settings.api_key_clinics).is_admin
    except tenancy.UnknownApiKey:
        return False


def _api(status: int, body: dict) -> dict:
    return {"statusCode": status, "headers": {"Content-Type": "application/json"}, "body": json.dumps(body)}
