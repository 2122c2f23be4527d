"""CDK entry point: `cdk synth` / `cdk deploy` (cdk.json), or `python infra/app.py`.

No account or region is hard-coded: `cdk deploy` takes them from the caller's
AWS profile, and synth needs neither credentials nor Docker (image assets are
built at deploy time).
"""

from __future__ import annotations

import json
from pathlib import Path

import aws_cdk as cdk
import cdk_nag

from infra.nag import suppress_reviewed_findings
from infra.settings import DeploymentSettings
from infra.stack import GlaucomaScreeningStack


CDK_JSON = Path(__file__).resolve().parent.parent / "cdk.json"


def build_app(context: dict | None = None, outdir: str | None = None) -> tuple[cdk.App, GlaucomaScreeningStack]:
    """cdk.json's context (feature flags; settings default in infra/settings.py) overridden by
    `context`: plain `python` and the CLI synthesize the same template."""
    defaults = json.loads(CDK_JSON.read_text()).get("context", {})
    app = cdk.App(context={**defaults, **(context or {})}, outdir=outdir)
    settings = DeploymentSettings.from_context(app.node)
    stack = GlaucomaScreeningStack(app, f"GlaucomaScreening-{settings.stage}", settings=settings,
                                   description="Glaucoma screening service (research and education use only)")
    cdk.Tags.of(stack).add("project", "glaucoma-screening")
    cdk.Tags.of(stack).add("stage", settings.stage)
    suppress_reviewed_findings(stack)
    cdk.Aspects.of(app).add(cdk_nag.AwsSolutionsChecks(verbose=True))
    return app, stack


if __name__ == "__main__":
    build_app()[0].synth()
