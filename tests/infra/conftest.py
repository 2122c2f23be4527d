"""Synthesize the stack once per test session (no credentials, no Docker)."""

from __future__ import annotations

import json

import pytest

CUSTOM_CONTEXT = {"stage": "prod", "consumer_memory_mb": 3008, "api_memory_mb": 1024,
                  "consumer_max_concurrency": 7, "api_reserved_concurrency": 3, "architecture": "arm64",
                  "retrain_schedule": "cron(30 2 * * ? *)", "image_retention_days": 9,
                  "alarm_email": "ops@example.org", "clinics": "north-eye,south-eye",
                  "web_domain_name": "screening.example.org",
                  "web_certificate_arn": "arn:aws:acm:us-east-1:123456789012:certificate/abc"}


def _synth(tmp_path_factory, context):
    from aws_cdk.assertions import Template

    from infra.app import build_app

    outdir = tmp_path_factory.mktemp("cdk.out")
    app, stack = build_app(context=context, outdir=str(outdir))
    assembly = app.synth()
    template_path = outdir / assembly.get_stack_by_name(stack.stack_name).template_file
    return stack, Template.from_json(json.loads(template_path.read_text())), template_path


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory):
    return _synth(tmp_path_factory, {})


@pytest.fixture(scope="session")
def template(synthesized):
    return synthesized[1]


@pytest.fixture(scope="session")
def custom_synthesized(tmp_path_factory):
    return _synth(tmp_path_factory, CUSTOM_CONTEXT)


@pytest.fixture(scope="session")
def custom_template(custom_synthesized):
    return custom_synthesized[1]


def by_id(template, kind: str, fragment: str) -> dict:
    """The one resource of `kind` whose logical id contains `fragment` (ids follow construct paths)."""
    found = {k: r for k, r in template.find_resources(kind).items() if fragment in k}
    assert len(found) == 1, f"expected one {kind} with {fragment!r} in its id, found {sorted(found)}"
    return next(iter(found.values()))


def resources_of(template, kind: str) -> dict:
    return template.find_resources(kind)


def only(template, kind: str, predicate=lambda r: True) -> dict:
    found = [r for r in template.find_resources(kind).values() if predicate(r)]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]
