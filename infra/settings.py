"""Per-deployment settings: every CDK context key and its default, defined here once.

cdk.json carries only feature flags and what a deployment changes; `cdk deploy
-c key=value` overrides either. Lists (clinics) are JSON lists in cdk.json or
comma-separated on the command line.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from screening import resources
from screening.config import Settings
from screening.tenancy import CLINIC_NAME


@dataclass(frozen=True)
class DeploymentSettings:
    """CDK context keys and their defaults."""

    stage: str = "dev"
    retrain_schedule: str = resources.RETRAIN_SCHEDULE  # EventBridge cron, UTC; the local cloud runs it too
    retrain_enabled: bool = True
    api_memory_mb: int = 2048
    consumer_memory_mb: int = 2048
    api_timeout_seconds: int = resources.API_TIMEOUT_SECONDS
    # 0: unreserved. Reserved concurrency comes out of the account pool, which must keep 10
    # unreserved: new accounts often have 10 in all, so nothing is reserved by default.
    api_reserved_concurrency: int = 0
    # The consumer is throttled by its event source's MaximumConcurrency (2..1000), not by
    # reserved concurrency: throttled messages then stay in the queue instead of dead-lettering.
    consumer_max_concurrency: int = resources.CONSUMER_MAX_CONCURRENCY
    architecture: str = "x86_64"  # or arm64
    alarm_email: str = ""
    image_retention_days: int = 30
    clinics: tuple[str, ...] = ("clinic",)  # one API key and usage plan each, plus one admin key
    api_rate_limit: int = 20  # requests per second per API key
    api_burst_limit: int = 40
    api_quota_per_day: int = 10000
    training_instance_type: str = Settings.training_instance_type
    training_max_runtime_seconds: int = Settings.training_max_runtime_seconds
    model_refresh_seconds: int = Settings.model_refresh_seconds  # a promotion reaches warm functions within this
    api_p99_latency_alarm_ms: int = 3000
    queue_age_alarm_seconds: int = 300
    # The web page: CloudFront's own *.cloudfront.net name and certificate unless both are given
    # (an ACM certificate in us-east-1 covering the domain).
    web_domain_name: str = ""
    web_certificate_arn: str = ""

    def __post_init__(self) -> None:
        if self.architecture not in ("x86_64", "arm64"):
            raise ValueError(f"architecture must be x86_64 or arm64, not {self.architecture!r}")
        if not self.clinics or len(set(self.clinics)) != len(self.clinics):
            raise ValueError("clinics must name at least one clinic, each once")
        for clinic in self.clinics:
            if clinic == "admin":
                raise ValueError("'admin' names the admin key; give the clinic another name")
            if not CLINIC_NAME.match(clinic):
                raise ValueError(f"clinic name {clinic!r}: lower-case letters, digits and '-', 1-32 characters")
        if not 2 <= self.consumer_max_concurrency <= 1000:
            raise ValueError("consumer_max_concurrency must be 2..1000 (the event source's range)")
        if bool(self.web_domain_name) != bool(self.web_certificate_arn):
            raise ValueError("web_domain_name and web_certificate_arn go together")

    @classmethod
    def from_context(cls, node) -> "DeploymentSettings":
        values = {}
        for f in fields(cls):
            raw = node.try_get_context(f.name)
            if raw is None:
                continue
            default = getattr(cls, f.name)
            if isinstance(default, bool):
                values[f.name] = raw if isinstance(raw, bool) else str(raw).lower() in ("1", "true", "yes")
            elif isinstance(default, int):
                values[f.name] = int(raw)
            elif isinstance(default, tuple):
                items = raw if isinstance(raw, list) else str(raw).split(",")
                values[f.name] = tuple(str(i).strip() for i in items if str(i).strip())
            else:
                values[f.name] = str(raw)
        return cls(**values)
