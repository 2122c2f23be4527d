"""The synthesized CloudFormation, on the properties that matter."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from aws_cdk.assertions import Annotations, Match

from screening import resources, telemetry
from screening.training_contract import JOB_NAME_PREFIX
from tests.infra.conftest import by_id, only

ROOT = Path(__file__).resolve().parents[2]


def bucket_named(template, fragment):
    return by_id(template, "AWS::S3::Bucket", fragment)


def test_image_bucket_is_private_encrypted_versioned_logged_and_expires_incoming(template, custom_template):
    props = bucket_named(template, "ImageBucket")["Properties"]
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True, "RestrictPublicBuckets": True}
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0][
        "ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert props["LoggingConfiguration"]["LogFilePrefix"] == "images/"
    [rule] = props["LifecycleConfiguration"]["Rules"]
    assert rule["Prefix"] == resources.INCOMING_PREFIX and rule["ExpirationInDays"] == 30
    custom = bucket_named(custom_template, "ImageBucket")["Properties"]
    assert custom["LifecycleConfiguration"]["Rules"][0]["ExpirationInDays"] == 9


def test_every_bucket_denies_plain_http(template):
    policies = template.find_resources("AWS::S3::BucketPolicy")
    assert len(policies) == len(template.find_resources("AWS::S3::Bucket")) == 4  # images, models, logs, web
    for policy in policies.values():
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        assert any(s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
                   for s in statements)


def test_model_bucket_is_versioned(template):
    assert bucket_named(template, "ModelBucket")["Properties"]["VersioningConfiguration"] == {"Status": "Enabled"}


def test_incoming_prefix_notifies_the_queue(template):
    notification = only(template, "Custom::S3BucketNotifications")["Properties"]["NotificationConfiguration"]
    [config] = notification["QueueConfigurations"]
    assert config["Events"] == ["s3:ObjectCreated:*"]
    assert config["Filter"]["Key"]["FilterRules"] == [{"Name": "prefix", "Value": resources.INCOMING_PREFIX}]


def test_queue_and_dlq(template):
    queues = template.find_resources("AWS::SQS::Queue")
    main = next(q for q in queues.values() if "RedrivePolicy" in q["Properties"])["Properties"]
    dlq = next(q for q in queues.values() if "RedrivePolicy" not in q["Properties"])["Properties"]
    # AWS: at least 5 on a queue feeding Lambda, so throttled deliveries do not dead-letter (was 3)
    assert main["RedrivePolicy"]["maxReceiveCount"] == resources.SQS_MAX_RECEIVE_COUNT >= 5
    assert main["VisibilityTimeout"] >= 6 * resources.CONSUMER_TIMEOUT_SECONDS
    assert main["SqsManagedSseEnabled"] is True and dlq["SqsManagedSseEnabled"] is True
    assert dlq["MessageRetentionPeriod"] == 14 * 86400
    for policy in template.find_resources("AWS::SQS::QueuePolicy").values():
        assert any(s["Effect"] == "Deny" and "aws:SecureTransport" in json.dumps(s.get("Condition", {}))
                   for s in policy["Properties"]["PolicyDocument"]["Statement"])


def image_function(template, handler):
    return only(template, "AWS::Lambda::Function",
                lambda r: r["Properties"].get("ImageConfig", {}).get("Command") == [handler])["Properties"]


def test_functions_are_container_images_with_settings_from_context(template, custom_template):
    consumer = image_function(template, "handlers.sqs_consumer.handler")
    api = image_function(template, "handlers.api.handler")
    assert consumer["PackageType"] == "Image" and consumer["Timeout"] == resources.CONSUMER_TIMEOUT_SECONDS
    assert consumer["MemorySize"] == 2048 and consumer["Architectures"] == ["x86_64"]
    assert api["Timeout"] == 29 and consumer["TracingConfig"] == {"Mode": "Active"}
    env = consumer["Environment"]["Variables"]
    assert env["POWERTOOLS_SERVICE_NAME"] == resources.SERVICE_NAME
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == resources.METRICS_NAMESPACE
    assert {"RESULTS_TABLE", "IMAGE_BUCKET", "MODEL_BUCKET", "QUEUE_URL", "DEAD_LETTER_QUEUE_URL"} <= set(env)
    custom = image_function(custom_template, "handlers.sqs_consumer.handler")
    assert custom["MemorySize"] == 3008 and "ReservedConcurrentExecutions" not in custom
    assert custom["Architectures"] == ["arm64"]
    custom_api = image_function(custom_template, "handlers.api.handler")
    assert custom_api["MemorySize"] == 1024 and custom_api["ReservedConcurrentExecutions"] == 3


def test_environment_variables_are_ones_the_functions_read(template):
    from screening.config import Settings

    known = set(Settings.variable_names()) | {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE",
                                              "POWERTOOLS_LOG_LEVEL"}
    for fn in template.find_resources("AWS::Lambda::Function").values():
        if fn["Properties"].get("PackageType") == "Image":
            assert set(fn["Properties"]["Environment"]["Variables"]) <= known


def test_consumer_reads_the_queue_in_batches_with_partial_failures(template, custom_template):
    mapping = only(template, "AWS::Lambda::EventSourceMapping")["Properties"]
    # Throttled by the event source, not by reserved concurrency.
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": resources.CONSUMER_MAX_CONCURRENCY}
    custom = only(custom_template, "AWS::Lambda::EventSourceMapping")["Properties"]
    assert custom["ScalingConfig"] == {"MaximumConcurrency": 7}
    assert mapping["BatchSize"] == resources.SQS_BATCH_SIZE
    assert mapping["MaximumBatchingWindowInSeconds"] == resources.SQS_BATCHING_WINDOW_SECONDS
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_results_table(template):
    table = only(template, "AWS::DynamoDB::Table")["Properties"]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert table["SSESpecification"] == {"SSEEnabled": True}
    assert table["TimeToLiveSpecification"] == {"AttributeName": resources.TTL_ATTRIBUTE, "Enabled": True}
    indexes = {i["IndexName"]: [k["AttributeName"] for k in i["KeySchema"]] for i in table["GlobalSecondaryIndexes"]}
    assert indexes == {resources.NEWEST_FIRST_INDEX: ["record_type", "created_at"],
                       resources.BY_LABEL_INDEX: ["label", "created_at"],
                       resources.BY_CLINIC_INDEX: ["clinic", "created_at"],
                       resources.BY_CLINIC_LABEL_INDEX: ["clinic_label", "created_at"]}
    assert indexes == {name: list(keys) for name, keys in resources.TABLE_INDEXES.items()}


def test_api_binary_types_keys_throttling_logs_tracing_cors_validation(template):
    api = only(template, "AWS::ApiGateway::RestApi")["Properties"]
    assert {"image/*", "multipart/form-data"} <= set(api["BinaryMediaTypes"]) and "*/*" not in api["BinaryMediaTypes"]
    methods = template.find_resources("AWS::ApiGateway::Method").values()
    real = [m["Properties"] for m in methods if m["Properties"]["HttpMethod"] != "OPTIONS"]
    assert len(real) == 16 and all(m.get("RequestValidatorId") for m in real)  # routes: tests/infra/test_routes.py
    assert any(m["Properties"]["HttpMethod"] == "OPTIONS" for m in methods)  # CORS preflight
    plans = template.find_resources("AWS::ApiGateway::UsagePlan").values()
    assert all(p["Properties"]["Throttle"] == {"RateLimit": 20, "BurstLimit": 40}
               and p["Properties"]["Quota"]["Period"] == "DAY" for p in plans)
    stage = only(template, "AWS::ApiGateway::Stage")["Properties"]
    assert stage["TracingEnabled"] is True and "DestinationArn" in stage["AccessLogSetting"]
    validator = only(template, "AWS::ApiGateway::RequestValidator")["Properties"]
    assert validator["ValidateRequestParameters"] is True


def test_retraining_schedule_role_and_trigger(template, custom_template):
    rules = template.find_resources("AWS::Events::Rule").values()
    schedule = next(r["Properties"] for r in rules if "ScheduleExpression" in r["Properties"])
    assert schedule["ScheduleExpression"] == "cron(0 3 ? * SUN *)"
    custom_rules = custom_template.find_resources("AWS::Events::Rule").values()
    assert any(r["Properties"].get("ScheduleExpression") == "cron(30 2 * * ? *)" for r in custom_rules)
    completed = next(r["Properties"] for r in rules if "EventPattern" in r["Properties"])
    assert completed["EventPattern"]["detail"]["TrainingJobStatus"] == ["Completed"]
    role = only(template, "AWS::IAM::Role", lambda r: "sagemaker.amazonaws.com" in json.dumps(
        r["Properties"]["AssumeRolePolicyDocument"]))
    assert role
    statements = [s for p in template.find_resources("AWS::IAM::Policy").values()
                  for s in p["Properties"]["PolicyDocument"]["Statement"]]
    create = next(s for s in statements if "sagemaker:CreateTrainingJob" in json.dumps(s["Action"]))
    assert f"training-job/{JOB_NAME_PREFIX}*" in json.dumps(create["Resource"])  # issue 8: screening-
    pass_role = next(s for s in statements if s["Action"] == "iam:PassRole")
    assert pass_role["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}


def dashboard_body(template) -> dict:
    body = only(template, "AWS::CloudWatch::Dashboard")["Properties"]["DashboardBody"]
    parts = body["Fn::Join"][1] if isinstance(body, dict) else [body]
    return json.loads("".join(p if isinstance(p, str) else "TOKEN" for p in parts))


def emitted_metric_names() -> set[str]:
    """Names the function code passes to add_metric (constants resolved through telemetry)."""
    names = set()
    for path in (ROOT / "functions").rglob("*.py"):
        for match in re.finditer(r"add_metric\(name=([A-Za-z_.\[\]\"]+)", path.read_text()):
            expr = match.group(1)
            if expr.startswith("telemetry."):
                names.add(getattr(telemetry, expr.split(".", 1)[1]))
            elif expr.startswith("PREDICTIONS_BY_LABEL"):
                names.update(telemetry.PREDICTIONS_BY_LABEL.values())
            elif expr in ("REJECTIONS", "INFERENCE_LATENCY"):
                names.add(getattr(telemetry, expr))
            else:
                names.add(expr.strip('"'))
    if "capture_cold_start_metric=True" in "".join(p.read_text() for p in (ROOT / "functions").rglob("*.py")):
        names.add(telemetry.COLD_START)
    return names


def test_dashboard_custom_metrics_are_ones_the_functions_emit(template):
    emitted = emitted_metric_names()
    assert {"GlaucomaPredictions", "NormalPredictions", "Rejections", "ColdStart"} <= emitted
    custom = []
    for widget in dashboard_body(template)["widgets"]:
        for metric in widget.get("properties", {}).get("metrics", []):
            if metric and metric[0] == resources.METRICS_NAMESPACE:
                custom.append(metric)
    assert len(custom) >= 5
    for metric in custom:
        name = metric[1]
        dimension_keys = [k for k in metric[2:] if isinstance(k, str)][::2]
        assert name in emitted, name
        expected = list(telemetry.COLD_START_DIMENSIONS) if name == telemetry.COLD_START else ["service"]
        assert sorted(dimension_keys) == sorted(expected), metric


def test_dashboard_shows_what_operators_need(template):
    text = json.dumps(dashboard_body(template))
    for needle in ('"Latency"', '"p99"', "4XXError", "5XXError", '"Duration"', '"Errors"', '"Throttles"',
                   "ConcurrentExecutions", "ApproximateAgeOfOldestMessage", "ApproximateNumberOfMessagesVisible",
                   "rejection rate", "/aws/sagemaker/TrainingJobs"):
        assert needle in text, needle


def test_alarms_go_to_the_sns_topic(template, custom_template):
    alarms = template.find_resources("AWS::CloudWatch::Alarm")
    assert len(alarms) == 6
    assert all(a["Properties"]["AlarmActions"] for a in alarms.values())
    text = json.dumps(alarms)
    for needle in ("ApproximateNumberOfMessagesVisible", "5XXError", "p99", "ApproximateAgeOfOldestMessage",
                   "errors / MAX"):
        assert needle in text, needle
    subscriptions = custom_template.find_resources("AWS::SNS::Subscription")
    assert [s["Properties"]["Endpoint"] for s in subscriptions.values()] == ["ops@example.org"]


def test_outputs(template, custom_template):
    outputs = template.to_json()["Outputs"]
    assert {"ApiUrl", "WebUrl", "WebBucketName", "ImageBucketName", "ModelBucketName", "AccessLogBucketName",
            "ResultsTableName", "AlarmTopicArn", "DashboardUrl", "ApiKeyIdClinic", "ApiKeyIdAdmin"} <= set(outputs)
    custom = custom_template.to_json()["Outputs"]
    assert {"ApiKeyIdNorthEye", "ApiKeyIdSouthEye", "ApiKeyIdAdmin"} <= set(custom)


def test_cdk_nag_aws_solutions_has_no_unsuppressed_errors(synthesized, custom_synthesized):
    for stack, _, _ in (synthesized, custom_synthesized):
        errors = Annotations.from_stack(stack).find_error("*", Match.string_like_regexp("AwsSolutions-.*"))
        assert errors == [], [f"{e.id}: {str(e.entry.data)[:120]}" for e in errors]


def test_every_nag_suppression_has_a_reason(synthesized):
    stack, template, _ = synthesized
    metadata = json.dumps(template.to_json())
    # cdk-nag writes {"reason": ..., "id": ...[, "applies_to": [...]]}; the old regex began at "id" and
    # matched none of them, so it could not fail.
    suppressions = [s for r in [template.to_json(), *template.to_json()["Resources"].values()]
                    for s in r.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", [])]
    from infra.nag import STACK_WIDE

    assert STACK_WIDE and all(len(s.reason) > 40 for s in STACK_WIDE)
    assert len(suppressions) >= 15 and metadata.count('"rules_to_suppress"') >= 8
    assert all(len(s["reason"].strip()) >= 20 for s in suppressions), [s for s in suppressions
                                                                       if len(s["reason"].strip()) < 20]


def test_cfn_lint_finds_no_errors(synthesized):
    _, _, template_path = synthesized
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    result = subprocess.run([str(cfn_lint), str(template_path), "--format", "parseable"],
                            capture_output=True, text=True)
    errors = [line for line in result.stdout.splitlines() if re.search(r":E\d{4}:", line)]
    assert errors == [], errors
    # exit code: bit 2 = errors, 4 = warnings, 8 = informational; 1 = cfn-lint itself failed
    assert result.returncode != 1 and not result.returncode & 2, result.stderr


def test_cdk_cli_synthesizes_without_credentials(tmp_path):
    """The npm `cdk` CLI on cdk.json, with no AWS credentials or profile in the environment."""
    import os
    import shutil

    if shutil.which("npm") is None:
        raise AssertionError("npm is needed for the CDK CLI (it comes with Node.js, which aws-cdk-lib needs too)")
    if not (ROOT / "node_modules" / ".bin" / "cdk").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=ROOT, check=True, timeout=300)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    env["HOME"] = str(tmp_path)  # no ~/.aws either
    result = subprocess.run([str(ROOT / "node_modules" / ".bin" / "cdk"), "synth", "--quiet", "--output",
                             str(tmp_path / "out"), "--no-version-reporting", "--no-notices"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    template = json.loads((tmp_path / "out" / "GlaucomaScreening-dev.template.json").read_text())
    assert "AWS::DynamoDB::Table" in json.dumps(template)
