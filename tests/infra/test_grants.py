"""Each role's permissions: what the code of issues 8, 9 and 12 calls, on the prefixes it uses, nothing more.

Read from the synthesized template as (action, resource) pairs per role, with
resources rendered the way cdk-nag names them (`<ModelBucket.Arn>/models/*`).
"""

from __future__ import annotations

import json

from screening import resources
from screening.config import Settings
from screening.training_contract import JOB_NAME_PREFIX
from tests.infra.test_iam import as_list, render

API, CONSUMER = "handlers.api.handler", "handlers.sqs_consumer.handler"
RETRAIN, PROMOTE = "handlers.retrain.start_handler", "handlers.retrain.promote_handler"
TRAINING_JOBS = f"arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>:training-job/{JOB_NAME_PREFIX}*"


def function(template, handler: str) -> tuple[str, dict]:
    return next((k, f) for k, f in template.find_resources("AWS::Lambda::Function").items()
                if f["Properties"].get("ImageConfig", {}).get("Command") == [handler])


def role_statements(template, role_id: str) -> list[dict]:
    return [s for p in template.find_resources("AWS::IAM::Policy").values()
            if {"Ref": role_id} in p["Properties"]["Roles"]
            for s in as_list(p["Properties"]["PolicyDocument"]["Statement"]) if s["Effect"] == "Allow"]


def function_role(template, handler: str) -> str:
    return function(template, handler)[1]["Properties"]["Role"]["Fn::GetAtt"][0]


def training_role(template) -> str:
    return next(k for k, r in template.find_resources("AWS::IAM::Role").items()
                if "sagemaker.amazonaws.com" in json.dumps(r["Properties"]["AssumeRolePolicyDocument"]))


def pairs(statements: list[dict], bucket_id: str) -> set[tuple[str, str]]:
    """(action, resource) with the bucket's ARN written as `B`."""
    out = set()
    for statement in statements:
        for action in as_list(statement["Action"]):
            for resource in as_list(statement["Resource"]):
                out.add((action, render(resource).replace(f"<{bucket_id}.Arn>", "B")))
    return out


def model_bucket_id(template) -> str:
    return next(k for k in template.find_resources("AWS::S3::Bucket") if "ModelBucket" in k)


def grants_of(template, role_id: str) -> set[tuple[str, str]]:
    return pairs(role_statements(template, role_id), model_bucket_id(template))


def test_consumer_and_api_read_the_registry_and_nothing_reads_the_old_prefixes(template):
    for handler in (CONSUMER, API):
        granted = grants_of(template, function_role(template, handler))
        assert {("s3:GetObject", "B/models/*"), ("s3:ListBucket", "B")} <= granted, handler
    everything = json.dumps(template.to_json()["Resources"])
    assert "models/current/" not in everything and "models/candidates/" not in everything
    # The local runner's job records (training-jobs/) are the local cloud's: no AWS role touches them.
    assert "training-jobs/" not in everything


def test_api_promotes_uploads_for_training_and_starts_jobs(template):
    granted = grants_of(template, function_role(template, API))
    assert ("s3:PutObject", "B/models/*") in granted  # pointer and version files (promote, first champion)
    assert ("s3:PutObject", "B/training-data/*/uploads/*") in granted  # the presigned PUT's signer
    assert ("s3:PutObject", "B/training-data/*") not in granted  # only the uploads folders
    assert {("sagemaker:CreateTrainingJob", TRAINING_JOBS), ("sagemaker:DescribeTrainingJob", TRAINING_JOBS),
            ("sagemaker:ListTrainingJobs", "*")} <= granted
    assert not any(a == "sagemaker:AddTags" for a, _ in granted)  # CreateTrainingJob sends no tags


def test_api_may_delete_idempotency_records_on_the_table_only(template):
    table_id = next(iter(template.find_resources("AWS::DynamoDB::Table")))
    statements = role_statements(template, function_role(template, API))
    deletes = [s for s in statements if "dynamodb:DeleteItem" in as_list(s["Action"])]
    assert [as_list(s["Resource"]) for s in deletes] == [[{"Fn::GetAtt": [table_id, "Arn"]}]]
    consumer = role_statements(template, function_role(template, CONSUMER))
    assert not any("dynamodb:DeleteItem" in as_list(s["Action"]) for s in consumer)


def test_job_starters_pass_only_the_training_role_to_sagemaker(template):
    role = training_role(template)
    for handler in (API, RETRAIN):
        statements = role_statements(template, function_role(template, handler))
        [pass_role] = [s for s in statements if "iam:PassRole" in as_list(s["Action"])]
        assert pass_role["Resource"] == {"Fn::GetAtt": [role, "Arn"]}
        assert pass_role["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
        granted = grants_of(template, function_role(template, handler))
        assert ("sagemaker:CreateTrainingJob", TRAINING_JOBS) in granted
        assert ("s3:PutObject", "B/models/*") in granted  # registers the bundled champion first


def test_training_role_reads_uploads_and_champion_and_writes_output(template):
    role = training_role(template)
    granted = grants_of(template, role)
    assert {("s3:GetObject", "B/training-data/*"), ("s3:GetObject", "B/models/*"),
            ("s3:PutObject", "B/training-output/*")} <= granted
    writes = {r for a, r in granted if a == "s3:PutObject"}
    assert writes == {"B/training-output/*"}
    [listing] = [s for s in role_statements(template, role) if s["Action"] == "s3:ListBucket"]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["training-data/*", "models/*"]}}


def test_promote_reads_the_job_output_and_writes_the_registry(template):
    granted = grants_of(template, function_role(template, PROMOTE))
    assert {("s3:GetObject", "B/training-output/*"), ("s3:GetObject", "B/models/*"),
            ("s3:PutObject", "B/models/*")} <= granted
    assert {r for a, r in granted if a == "s3:PutObject"} == {"B/models/*"}


def env(template, handler: str) -> dict:
    return function(template, handler)[1]["Properties"]["Environment"]["Variables"]


def test_functions_get_the_training_and_model_refresh_settings(template, custom_template):
    for handler in (API, CONSUMER):
        assert env(template, handler)["MODEL_REFRESH_SECONDS"] == str(Settings.model_refresh_seconds)
    role = training_role(template)
    for handler in (API, RETRAIN):
        variables = env(template, handler)
        assert variables["TRAINING_RUNNER"] == "sagemaker"
        assert variables["TRAINING_ROLE_ARN"] == {"Fn::GetAtt": [role, "Arn"]}
        assert variables["TRAINING_INSTANCE_TYPE"] == Settings.training_instance_type
        assert variables["TRAINING_MAX_RUNTIME_SECONDS"] == str(Settings.training_max_runtime_seconds)
        assert "TRAINING_IMAGE_URI" in variables
    assert env(template, RETRAIN)["RETRAIN_SCHEDULE"] == resources.RETRAIN_SCHEDULE
    assert env(custom_template, RETRAIN)["RETRAIN_SCHEDULE"] == "cron(30 2 * * ? *)"


def test_the_schedules_default_is_the_one_definition(template):
    from infra.settings import DeploymentSettings

    assert DeploymentSettings().retrain_schedule == resources.RETRAIN_SCHEDULE
    rules = template.find_resources("AWS::Events::Rule").values()
    [schedule] = [r["Properties"] for r in rules if "ScheduleExpression" in r["Properties"]]
    assert schedule["ScheduleExpression"] == resources.RETRAIN_SCHEDULE
