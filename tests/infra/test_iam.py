"""Every IAM wildcard is suppressed on its own resource, for itself, with a reason.

The checker renders each wildcard action and resource the way cdk-nag names them
("Action::s3:List*", "Resource::<Bucket.Arn>/incoming/*") and looks for an
AwsSolutions-IAM5 suppression on the same policy whose `applies_to` is that
finding. The last tests feed it a template with a new wildcard, and one with a
suppression without reason, and see it fail.
"""

from __future__ import annotations

import copy
import json
import re

import pytest

from screening.training_contract import JOB_NAME_PREFIX

IAM5 = "AwsSolutions-IAM5"
MIN_REASON = 40


def render(value) -> str:
    """A policy value as cdk-nag writes it in a finding."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Ref" in value:
        return f"<{value['Ref']}>"
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return "<{}.{}>".format(*value["Fn::GetAtt"])
    if isinstance(value, dict) and isinstance(value.get("Fn::Sub"), str):  # ${AWS::Region} -> <AWS::Region>
        return re.sub(r"\$\{([^}]+)\}", r"<\1>", value["Fn::Sub"])
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(render(p) for p in parts)
    return json.dumps(value)


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def policy_documents(resource: dict) -> list[dict]:
    props = resource["Properties"]
    if resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
        return [props["PolicyDocument"]]
    if resource["Type"] == "AWS::IAM::Role":
        return [p["PolicyDocument"] for p in props.get("Policies", [])]
    return []


def wildcard_findings(resource: dict) -> set[str]:
    findings = set()
    for document in policy_documents(resource):
        for statement in as_list(document["Statement"]):
            if statement["Effect"] != "Allow":
                continue
            findings |= {f"Action::{a}" for a in as_list(statement.get("Action", [])) if "*" in a}
            findings |= {f"Resource::{render(r)}" for r in as_list(statement.get("Resource", []))
                         if "*" in render(r)}
    return findings


def unexplained_wildcards(template_json: dict) -> list[str]:
    """Problems: wildcards without their own reasoned suppression, stack-wide IAM5 suppressions,
    suppressions without reason."""
    problems = []
    stack_wide = template_json.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", [])
    problems += [f"stack-wide suppression of {s['id']}" for s in stack_wide if s["id"] == IAM5]
    for logical_id, resource in template_json["Resources"].items():
        suppressions = resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", [])
        reasoned = {}
        for suppression in suppressions:
            if suppression["id"] != IAM5:
                continue
            if not suppression.get("applies_to"):
                problems.append(f"{logical_id}: an IAM5 suppression for every wildcard at once")
            if len(suppression.get("reason", "").strip()) < MIN_REASON:
                problems.append(f"{logical_id}: IAM5 suppression without a reason")
            for finding in suppression.get("applies_to", []):
                reasoned[finding] = suppression.get("reason", "")
        for finding in sorted(wildcard_findings(resource)):
            if finding not in reasoned:
                problems.append(f"{logical_id}: {finding} has no suppression with a reason")
    return problems


def test_every_wildcard_is_suppressed_on_its_resource_with_a_reason(template):
    template_json = template.to_json()
    assert unexplained_wildcards(template_json) == []
    # ...and there are wildcards to check: the checker sees them.
    policies = [r for r in template_json["Resources"].values() if r["Type"] == "AWS::IAM::Policy"]
    assert sum(len(wildcard_findings(r)) for r in policies) >= 10


DEPLOYMENT_HANDLER = "CustomCDKBucketDeployment"  # CDK's handler of the web page's BucketDeployment


def test_no_bucket_wide_or_action_wildcards(template):
    """The defects the stack-wide suppression hid: s3:List*, s3:DeleteObject*, s3:GetBucket*,
    s3:Abort* and every index of the table (index/*). CDK's page-deployment handler is the one
    exception (CDK writes its grants), and only on the web bucket and CDK's asset bucket."""
    template_json = template.to_json()
    resources = template_json["Resources"]
    findings = set().union(*(wildcard_findings(r) for k, r in resources.items()
                             if not k.startswith(DEPLOYMENT_HANDLER)))
    deployment = set().union(*(wildcard_findings(r) for k, r in resources.items()
                               if k.startswith(DEPLOYMENT_HANDLER)))
    web_bucket = next(k for k in resources if "WebBucket" in k and resources[k]["Type"] == "AWS::S3::Bucket")
    assert deployment and {f for f in deployment if f.startswith("Resource::")} == {
        f"Resource::<{web_bucket}.Arn>/*",
        "Resource::arn:<AWS::Partition>:s3:::cdk-hnb659fds-assets-<AWS::AccountId>-<AWS::Region>/*"}
    assert not [f for f in findings if f.startswith("Action::")], findings
    assert not [f for f in findings if f.endswith("/index/*")], findings
    resource_wildcards = {f for f in findings if f.startswith("Resource::")}
    allowed_tails = ("/incoming/*", "/results/*", "/models/*", "/training-data/*", "/training-data/*/uploads/*",
                     "/training-output/*", f"training-job/{JOB_NAME_PREFIX}*", "/aws/sagemaker/TrainingJobs*")
    assert {f for f in resource_wildcards if f != "Resource::*" and not f.endswith(allowed_tails)} == set()


def test_star_resources_only_for_actions_without_resource_types(template):
    allowed = {"ecr:GetAuthorizationToken", "cloudwatch:PutMetricData", "xray:PutTraceSegments",
               "xray:PutTelemetryRecords", "sagemaker:ListTrainingJobs"}
    for resource in template.find_resources("AWS::IAM::Policy").values():
        for statement in resource["Properties"]["PolicyDocument"]["Statement"]:
            if "*" in as_list(statement["Resource"]):
                assert set(as_list(statement["Action"])) <= allowed, statement


def test_the_checker_fails_on_a_new_wildcard(template):
    template_json = copy.deepcopy(template.to_json())
    policy_id, policy = next((k, r) for k, r in template_json["Resources"].items()
                             if r["Type"] == "AWS::IAM::Policy" and "ApiFunction" in k)
    policy["Properties"]["PolicyDocument"]["Statement"].append(
        {"Effect": "Allow", "Action": "s3:Delete*", "Resource": {"Fn::Join": ["", [
            {"Fn::GetAtt": ["SomeBucket", "Arn"]}, "/*"]]}})
    problems = unexplained_wildcards(template_json)
    assert f"{policy_id}: Action::s3:Delete* has no suppression with a reason" in problems
    assert f"{policy_id}: Resource::<SomeBucket.Arn>/* has no suppression with a reason" in problems


@pytest.mark.parametrize("change", ["empty reason", "no applies_to", "stack-wide"])
def test_the_checker_fails_on_a_suppression_without_reason_or_scope(template, change):
    template_json = copy.deepcopy(template.to_json())
    if change == "stack-wide":
        template_json.setdefault("Metadata", {}).setdefault("cdk_nag", {}).setdefault(
            "rules_to_suppress", []).append({"id": IAM5, "reason": "Wildcards are fine here, trust us, really."})
    else:
        resource = next(r for r in template_json["Resources"].values()
                        if r.get("Metadata", {}).get("cdk_nag") and r["Type"] == "AWS::IAM::Policy")
        suppression = resource["Metadata"]["cdk_nag"]["rules_to_suppress"][0]
        if change == "empty reason":
            suppression["reason"] = ""
        else:
            suppression.pop("applies_to")
    assert unexplained_wildcards(template_json) != []
