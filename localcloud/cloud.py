"""The local cloud: moto's server for S3, SQS and DynamoDB, wired like the CDK stack,
with the real handlers behind a local API Gateway and a local SQS event source.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import boto3

from localcloud.provision import LocalResources, provision
from screening import resources
from screening.resources import ResourceNames

log = logging.getLogger("localcloud")
REGION = "us-east-1"
DEFAULT_API_KEY = "local-dev-key"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LocalCloud:
    """Start with `start()`, stop with `stop()`; or use it as a context manager."""

    aws_port: int = 0
    api_port: int = 0
    api_key: str = DEFAULT_API_KEY
    model_dir: Path | None = None
    retry_delay_s: int = 1

    def __post_init__(self) -> None:
        self.aws_port = self.aws_port or free_port()
        self.api_port = self.api_port or free_port()
        self.names = ResourceNames.for_stage(resources.LOCAL_STAGE)
        self.resources: LocalResources | None = None
        self._moto = None
        self._api_server = None
        self._poller = None

    @property
    def aws_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.aws_port}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def session(self) -> boto3.session.Session:
        return boto3.session.Session(aws_access_key_id="local", aws_secret_access_key="local",
                                     region_name=REGION)

    def client(self, service: str):
        return self.session().client(service, endpoint_url=self.aws_endpoint)

    def handler_environment(self) -> dict[str, str]:
        """What the CDK stack sets on the functions, pointed at the local endpoints."""
        assert self.resources is not None
        env = {
            "AWS_ENDPOINT_URL": self.aws_endpoint,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "RESULTS_TABLE": self.names.results_table,
            "IMAGE_BUCKET": self.names.image_bucket,
            "QUEUE_URL": self.resources.queue_url,
            "DEAD_LETTER_QUEUE_URL": self.resources.dead_letter_queue_url,
            "POWERTOOLS_SERVICE_NAME": resources.SERVICE_NAME,
            "POWERTOOLS_METRICS_NAMESPACE": resources.METRICS_NAMESPACE,
        }
        if self.model_dir:
            env["MODEL_DIR"] = str(self.model_dir)
        # --- issue 8: the model registry in the model bucket, training jobs run by localcloud/training_jobs.py
        env.update(MODEL_BUCKET=self.names.model_bucket, TRAINING_RUNNER="local")
        # Quiet by default on a terminal; LOCAL_LOG_LEVEL=INFO shows the handlers' JSON logs and
        # LOCAL_METRICS=1 their EMF metric lines, as CloudWatch would receive them.
        env["POWERTOOLS_LOG_LEVEL"] = os.environ.get("LOCAL_LOG_LEVEL", "WARNING")
        env["POWERTOOLS_METRICS_DISABLED"] = "false" if os.environ.get("LOCAL_METRICS") == "1" else "true"
        return env

    def start(self) -> "LocalCloud":
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request access log
        # The consumer emits no metric when a batch only skips; Lambda logs the same warning.
        warnings.filterwarnings("ignore", message="No application metrics to publish")
        self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=self.aws_port, verbose=False)
        self._moto.start()
        session = self.session()
        endpoint_session = EndpointSession(session, self.aws_endpoint)
        self.resources = provision(endpoint_session, self.names)
        os.environ.update(self.handler_environment())

        # Import the handlers only now: they read the environment at first use.
        from handlers import api, sqs_consumer
        from handlers.runtime import runtime
        from localcloud.api_gateway import make_server
        from localcloud.sqs_poller import SqsPoller

        runtime.cache_clear()
        runtime()  # load the model up front, as Lambda's init phase does
        self._api_server = make_server("127.0.0.1", self.api_port, api.handler, self.api_key)
        threading.Thread(target=self._api_server.serve_forever, name="api-gateway", daemon=True).start()
        self._poller = SqsPoller(self.client("sqs"), self.resources.queue_url, self.resources.queue_arn,
                                 sqs_consumer.handler, REGION, retry_delay_s=self.retry_delay_s)
        self._poller.start()
        # --- issue 8: the retrain schedule (resources.RETRAIN_SCHEDULE, or RETRAIN_SCHEDULE) runs locally too
        from localcloud.schedule import start_local_schedule
        from screening.config import Settings

        self._schedule = start_local_schedule(self.client("s3"), Settings.from_env())
        return self

    def stop(self) -> None:
        if getattr(self, "_schedule", None):  # issue 8
            self._schedule.stop()
        if self._poller:
            self._poller.stop()
        if self._api_server:
            self._api_server.shutdown()
            self._api_server.server_close()
        if self._moto:
            self._moto.stop()

    def __enter__(self) -> "LocalCloud":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class EndpointSession:
    """A boto3 session whose clients all talk to the local endpoint."""

    def __init__(self, session: boto3.session.Session, endpoint: str) -> None:
        self._session = session
        self._endpoint = endpoint

    def client(self, service: str):
        return self._session.client(service, endpoint_url=self._endpoint)
