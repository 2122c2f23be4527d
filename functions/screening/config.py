"""Runtime configuration: every environment variable the functions read, with its default.

The CDK stack sets these on the Lambda functions and the local cloud sets them
for its in-process handlers; nothing else reads os.environ.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path

from screening import resources

BUNDLED_MODEL_DIR = Path(__file__).resolve().parent.parent.parent / "models"


@dataclass(frozen=True)
class Settings:
    # Each field is read from the environment variable of the same name, upper-cased.
    results_table: str = resources.ResourceNames.for_stage(resources.LOCAL_STAGE).results_table
    image_bucket: str = resources.ResourceNames.for_stage(resources.LOCAL_STAGE).image_bucket
    model_bucket: str = ""  # empty: serve the model baked into the image
    queue_url: str = ""
    dead_letter_queue_url: str = ""
    model_dir: str = str(BUNDLED_MODEL_DIR)
    model_cache_dir: str = "/tmp/model"
    # How often (at most) a running function reads the registry's pointer
    # (models/<condition>/current.json) to pick up a promoted or rolled-back model without a
    # restart: a promotion reaches every warm container within this many seconds.
    model_refresh_seconds: int = 60
    max_image_bytes: int = 20 * 1024 * 1024
    max_image_pixels: int = 40_000_000
    max_api_body_bytes: int = resources.MAX_API_BODY_BYTES
    max_batch_images: int = resources.MAX_BATCH_IMAGES
    max_batch_bytes: int = resources.MAX_BATCH_BYTES
    presigned_url_seconds: int = resources.PRESIGNED_URL_SECONDS
    result_retention_days: int = resources.RESULT_RETENTION_DAYS
    inference_threads: int = 0  # 0: LiteRT's default
    # tenancy (screening/tenancy.py): JSON {api key id: clinic, or "*" for the admin key}; empty: one tenant
    api_key_clinics: str = ""
    cors_allow_origin: str = "*"  # the web page's origin when deployed (the stack sets it)
    # retraining
    training_image_uri: str = ""
    training_role_arn: str = ""
    training_instance_type: str = "ml.m5.xlarge"
    training_max_runtime_seconds: int = 3600
    # "sagemaker"; "local": the local cloud's subprocess runner (localcloud/training_jobs.py); "disabled"
    training_runner: str = "sagemaker"
    training_state_dir: str = ""  # local runner: where each job's /opt/ml-like folder lives
    retrain_schedule: str = resources.RETRAIN_SCHEDULE  # EventBridge expression; the local cloud runs it too

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "Settings":
        env = os.environ if environ is None else environ
        values = {}
        for f in fields(cls):
            raw = env.get(f.name.upper())
            if raw is not None and raw != "":
                default = getattr(cls, f.name)
                values[f.name] = int(raw) if isinstance(default, int) else raw
        return cls(**values)

    @staticmethod
    def variable_names() -> list[str]:
        return [f.name.upper() for f in fields(Settings)]
