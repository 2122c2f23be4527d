"""What a first `cdk deploy` and the first weeks of running would hit, asserted on the template.

Each test names the defect it guards against; each would have failed on the
stack before issue 10.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from screening import resources
from tests.infra.conftest import by_id, only

ROOT = Path(__file__).resolve().parents[2]
NAMED_PROPERTIES = {"AWS::S3::Bucket": "BucketName", "AWS::DynamoDB::Table": "TableName",
                    "AWS::SQS::Queue": "QueueName", "AWS::CloudWatch::Dashboard": "DashboardName",
                    "AWS::Logs::LogGroup": "LogGroupName",
                    "AWS::Lambda::Function": "FunctionName", "AWS::IAM::Role": "RoleName",
                    "AWS::SNS::Topic": "TopicName", "AWS::KMS::Key": "KeyName"}


def statements(document: dict) -> list[dict]:
    return document["Statement"]


# -- alarms reach a subscriber -----------------------------------------------------------------
def test_alarm_topic_uses_a_customer_managed_key_that_cloudwatch_may_use(template):
    """Was alias/aws/sns, which CloudWatch cannot use: no alarm notification was ever delivered."""
    topic = only(template, "AWS::SNS::Topic")["Properties"]
    key_ref = topic["KmsMasterKeyId"]
    assert "alias/aws/sns" not in json.dumps(topic)
    [key_id] = template.find_resources("AWS::KMS::Key")
    assert key_ref == {"Fn::GetAtt": [key_id, "Arn"]}
    key = template.find_resources("AWS::KMS::Key")[key_id]["Properties"]
    assert key["EnableKeyRotation"] is True
    [cloudwatch] = [s for s in statements(key["KeyPolicy"])
                    if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}]
    assert cloudwatch["Effect"] == "Allow"
    assert set(cloudwatch["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}
    assert cloudwatch["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}


def test_topic_policy_lets_this_stacks_alarms_publish_over_tls_only(template):
    """Was only the TLS deny: the policy that replaces SNS's default must allow CloudWatch."""
    policy = only(template, "AWS::SNS::TopicPolicy")["Properties"]["PolicyDocument"]
    allow = [s for s in statements(policy) if s["Effect"] == "Allow"]
    assert len(allow) == 1 and allow[0]["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert allow[0]["Action"] == "sns:Publish"
    source_arn = json.dumps(allow[0]["Condition"]["ArnLike"]["aws:SourceArn"])
    assert ":alarm:GlaucomaScreening-dev-*" in source_arn  # the alarms are named "<stack>-<alarm>"
    assert any(s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
               for s in statements(policy))
    topic_id = next(iter(template.find_resources("AWS::SNS::Topic")))
    for alarm in template.find_resources("AWS::CloudWatch::Alarm").values():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": topic_id}]
        assert alarm["Properties"]["AlarmName"].startswith("GlaucomaScreening-dev-")  # the SourceArn pattern


# -- fits the default quotas -------------------------------------------------------------------
@pytest.mark.parametrize("which", ["default", "custom"])
def test_no_function_reserves_concurrency_unless_asked(template, custom_template, which):
    """Retrain and Promote reserved 1 each: with the default quota of 10 the deploy failed."""
    functions = (template if which == "default" else custom_template).find_resources("AWS::Lambda::Function")
    reserved = {f["Properties"].get("ImageConfig", {}).get("Command", ["?"])[0]: f["Properties"].get(
        "ReservedConcurrentExecutions") for f in functions.values()}
    assert reserved["handlers.retrain.start_handler"] is None
    assert reserved["handlers.retrain.promote_handler"] is None
    assert reserved["handlers.sqs_consumer.handler"] is None
    expected_api = None if which == "default" else 3  # only when a deployment asks
    assert reserved["handlers.api.handler"] == expected_api
    if which == "default":
        assert all(r is None for r in reserved.values())


# -- deploy -> destroy -> deploy ---------------------------------------------------------------
@pytest.mark.parametrize("which", ["default", "custom"])
def test_no_fixed_physical_names(template, custom_template, which):
    """Fixed bucket/table names with RETAIN made a deploy after `cdk destroy` fail on existing names."""
    chosen = template if which == "default" else custom_template
    for kind, name_property in NAMED_PROPERTIES.items():
        for logical_id, resource in chosen.find_resources(kind).items():
            assert name_property not in resource["Properties"], (logical_id, name_property)


def test_retained_data_is_the_buckets_and_table_and_the_readme_says_so(template):
    retained = {k for k, r in template.to_json()["Resources"].items() if r.get("DeletionPolicy") == "Retain"}
    kinds = sorted(template.to_json()["Resources"][k]["Type"] for k in retained)
    # images, models, access logs, web page; results; API Gateway's account-wide logging role (CDK's default)
    assert kinds == ["AWS::ApiGateway::Account", "AWS::DynamoDB::Table", "AWS::IAM::Role"] + ["AWS::S3::Bucket"] * 4
    deploying = readme_section("Deploying to AWS")
    for output in ("ImageBucketName", "ModelBucketName", "AccessLogBucketName", "WebBucketName",
                   "ResultsTableName"):
        assert output in deploying, output
    assert "retain" in deploying.lower() and "destroy" in deploying


# -- payload limits true end to end -------------------------------------------------------------
def test_raw_body_ceiling_fits_lambdas_synchronous_payload_once_base64_encoded():
    """Was 7 MiB raw (9.3 MB encoded): requests over ~4.4 MB failed before the handler's 413."""
    encoded = resources.base64_length(resources.MAX_API_BODY_BYTES)
    assert encoded + resources.PROXY_EVENT_OVERHEAD_BYTES <= resources.LAMBDA_SYNC_PAYLOAD_BYTES == 6 * 1024 * 1024
    assert resources.MAX_BATCH_BYTES <= resources.MAX_API_BODY_BYTES
    from screening.config import Settings

    assert Settings().max_api_body_bytes == resources.MAX_API_BODY_BYTES


def readme_section(title: str) -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 3)
    return text[start:end if end > 0 else None]


def test_readme_numbers_equal_the_codes():
    text = (ROOT / "README.md").read_text()
    assert f"{resources.MAX_API_BODY_BYTES:,} bytes" in text  # the raw body ceiling
    assert f"at most {resources.MAX_BATCH_IMAGES} images" in text
    assert f"after {resources.SQS_MAX_RECEIVE_COUNT} receives" in text
    for stale in ("7 MiB", "6 MB)", "after 3 receives", "(3 receives)"):  # whole figures: not "1,157 MiB"
        assert not re.search(r"(?<![\d,.])" + re.escape(stale), text), stale
    assert "/uploads" in readme_section("Deploying to AWS")


# -- web page hosting and CORS ------------------------------------------------------------------
def test_web_page_is_a_private_bucket_behind_cloudfront_over_https(template, custom_template):
    distribution = only(template, "AWS::CloudFront::Distribution")["Properties"]["DistributionConfig"]
    behavior = distribution["DefaultCacheBehavior"]
    assert behavior["ViewerProtocolPolicy"] == "redirect-to-https"
    [origin] = distribution["Origins"]
    assert origin["OriginAccessControlId"] and origin["S3OriginConfig"]["OriginAccessIdentity"] == ""
    web_bucket_id = next(k for k in template.find_resources("AWS::S3::Bucket") if "WebBucket" in k)
    assert json.dumps(origin["DomainName"]).count(web_bucket_id) == 1
    bucket = by_id(template, "AWS::S3::Bucket", "WebBucket")["Properties"]
    assert bucket["PublicAccessBlockConfiguration"]["RestrictPublicBuckets"] is True
    policy = by_id(template, "AWS::S3::BucketPolicy", "WebBucket")["Properties"]["PolicyDocument"]
    reader = next(s for s in statements(policy) if s["Effect"] == "Allow")
    assert reader["Principal"] == {"Service": "cloudfront.amazonaws.com"} and reader["Action"] == "s3:GetObject"
    custom = only(custom_template, "AWS::CloudFront::Distribution")["Properties"]["DistributionConfig"]
    assert custom["Aliases"] == ["screening.example.org"]
    assert custom["ViewerCertificate"]["MinimumProtocolVersion"] == "TLSv1.2_2021"


def web_origin_of(template):
    distribution_id = next(iter(template.find_resources("AWS::CloudFront::Distribution")))
    return {"Fn::Join": ["", ["https://", {"Fn::GetAtt": [distribution_id, "DomainName"]}]]}


def test_cors_allows_the_web_page_only(template, custom_template):
    """Was Access-Control-Allow-Origin: * on the API and the upload bucket."""
    origin = web_origin_of(template)
    quoted = {"Fn::Join": ["", ["'https://", origin["Fn::Join"][1][1], "'"]]}
    preflights = [m["Properties"] for m in template.find_resources("AWS::ApiGateway::Method").values()
                  if m["Properties"]["HttpMethod"] == "OPTIONS"]
    assert preflights
    for method in preflights:
        [response] = method["Integration"]["IntegrationResponses"]
        assert response["ResponseParameters"]["method.response.header.Access-Control-Allow-Origin"] == quoted
    gateway_responses = template.find_resources("AWS::ApiGateway::GatewayResponse").values()
    assert {r["Properties"]["ResponseType"] for r in gateway_responses} == {"DEFAULT_4XX", "DEFAULT_5XX"}
    for response in gateway_responses:
        assert response["Properties"]["ResponseParameters"][
            "gatewayresponse.header.Access-Control-Allow-Origin"] == quoted
    api = only(template, "AWS::Lambda::Function",
               lambda r: r["Properties"].get("ImageConfig", {}).get("Command") == ["handlers.api.handler"])
    assert api["Properties"]["Environment"]["Variables"]["CORS_ALLOW_ORIGIN"] == origin
    [rule] = by_id(template, "AWS::S3::Bucket", "ImageBucket")["Properties"]["CorsConfiguration"]["CorsRules"]
    assert rule["AllowedOrigins"] == [origin] and rule["AllowedMethods"] == ["POST"]  # POST /uploads: presigned POST
    [rule] = by_id(template, "AWS::S3::Bucket", "ModelBucket")["Properties"]["CorsConfiguration"]["CorsRules"]
    assert rule["AllowedOrigins"] == [origin] and rule["AllowedMethods"] == ["PUT"]  # POST /uploads/training
    custom_api = only(custom_template, "AWS::Lambda::Function",
                      lambda r: r["Properties"].get("ImageConfig", {}).get("Command") == ["handlers.api.handler"])
    assert custom_api["Properties"]["Environment"]["Variables"]["CORS_ALLOW_ORIGIN"] == "https://screening.example.org"


# -- tenancy -----------------------------------------------------------------------------------
def key_clinic_map(function: dict) -> dict:
    """API_KEY_CLINICS with each key's Ref as its id."""
    value = function["Properties"]["Environment"]["Variables"]["API_KEY_CLINICS"]
    rendered = "".join(p if isinstance(p, str) else f"REF:{p['Ref']}" for p in value["Fn::Join"][1])
    return json.loads(rendered)


def test_a_usage_plan_and_key_per_clinic_and_one_admin_key(custom_template):
    """Was one key for every clinic: any key listed every clinic's records."""
    keys = custom_template.find_resources("AWS::ApiGateway::ApiKey")
    plans = custom_template.find_resources("AWS::ApiGateway::UsagePlan")
    links = [l["Properties"] for l in custom_template.find_resources("AWS::ApiGateway::UsagePlanKey").values()]
    assert len(keys) == len(plans) == len(links) == 3  # north-eye, south-eye, admin
    assert {l["KeyId"]["Ref"] for l in links} == set(keys)
    assert len({l["UsagePlanId"]["Ref"] for l in links}) == 3  # each key its own plan (throttle, quota)
    for plan in plans.values():
        [stage] = plan["Properties"]["ApiStages"]
        assert stage["Stage"] == {"Ref": next(iter(custom_template.find_resources("AWS::ApiGateway::Stage")))}
    for key in keys.values():
        assert "StageKeys" not in key["Properties"]
    functions = custom_template.find_resources("AWS::Lambda::Function").values()
    api = next(f for f in functions if f["Properties"].get("ImageConfig", {}).get("Command") == ["handlers.api.handler"])
    mapping = key_clinic_map(api)
    assert sorted(mapping.values()) == ["*", "north-eye", "south-eye"]
    assert {k.removeprefix("REF:") for k in mapping} == set(keys)
    consumer = next(f for f in functions
                    if f["Properties"].get("ImageConfig", {}).get("Command") == ["handlers.sqs_consumer.handler"])
    assert key_clinic_map(consumer) == mapping
    # The retrain function serves only the schedule (every route goes to the API function): no key reaches it.
    retrain = next(f for f in functions
                   if f["Properties"].get("ImageConfig", {}).get("Command") == ["handlers.retrain.start_handler"])
    assert "API_KEY_CLINICS" not in retrain["Properties"]["Environment"]["Variables"]


# -- structure: one construct per concern, defaults once ------------------------------------------
CONSTRUCT_MODULES = {"Storage": "storage", "Queueing": "queueing", "Functions": "functions",
                     "Api": "api", "Retraining": "retraining", "Observability": "observability", "Web": "web"}


def test_the_stack_is_composed_of_one_construct_per_concern(synthesized):
    stack, _, _ = synthesized
    children = {c.node.id: type(c).__module__ for c in stack.node.children
                if type(c).__module__.startswith("infra.")}
    assert children == {name: f"infra.{module}" for name, module in CONSTRUCT_MODULES.items()}
    stack_source = (ROOT / "infra" / "stack.py").read_text()
    constructor = stack_source[stack_source.index("def __init__"):]
    assert len(constructor.splitlines()) < 60


def test_cdk_json_carries_only_what_differs_from_the_settings_defaults():
    from dataclasses import fields

    from infra.settings import DeploymentSettings

    context = json.loads((ROOT / "cdk.json").read_text())["context"]
    for f in fields(DeploymentSettings):
        if f.name in context:
            assert context[f.name] != getattr(DeploymentSettings, f.name), f"{f.name} repeats its default"


def test_settings_parse_lists_and_refuse_what_aws_would():
    from infra.settings import DeploymentSettings

    class Node:
        def __init__(self, context):
            self.context = context

        def try_get_context(self, key):
            return self.context.get(key)

    assert DeploymentSettings.from_context(Node({"clinics": "a, b-2"})).clinics == ("a", "b-2")
    assert DeploymentSettings.from_context(Node({"clinics": ["x"]})).clinics == ("x",)
    for bad in ({"clinics": "Bad Name"}, {"clinics": "admin"}, {"clinics": "a,a"},
                {"consumer_max_concurrency": 1}, {"architecture": "sparc"}, {"web_domain_name": "x.org"}):
        with pytest.raises(ValueError):
            DeploymentSettings.from_context(Node(bad))


def test_image_assets_are_built_for_the_platforms_that_run_them(synthesized, custom_synthesized):
    """Functions follow `architecture`; training is linux/amd64 always (no aarch64 tensorflow-cpu wheel,
    tests/packaging/test_wheels.py)."""
    for (_, _, template_path), functions_platform in ((synthesized, "linux/amd64"),
                                                      (custom_synthesized, "linux/arm64")):
        manifest = template_path.with_name(template_path.name.replace(".template.json", ".assets.json"))
        images = json.loads(manifest.read_text())["dockerImages"].values()
        platforms = {image["source"]["dockerFile"]: image["source"].get("platform") for image in images}
        assert platforms == {"functions/Dockerfile": functions_platform, "training/Dockerfile": "linux/amd64"}
