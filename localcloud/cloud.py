"""The local cloud: three kinds of process on 127.0.0.1, wired like the CDK stack.

- storage: moto's server (S3, SQS, DynamoDB) with a journal, so state survives (localcloud/storage.py);
- api: gunicorn with N workers, each a Lambda container of the API handler (localcloud/gateway.py);
- consumer: the SQS event source mapping and the consumer handler (localcloud/sqs_poller.py).

`LocalCloud` starts and stops them (a context manager too); each child dies with it.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import boto3

from localcloud.api_gateway import ADMIN_KEY_ID, DEFAULT_API_KEY
from localcloud.provision import LocalResources, provision
from screening import resources
from screening.resources import ResourceNames

log = logging.getLogger("localcloud")
REGION = "us-east-1"
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_STATE_DIR = ROOT / ".localcloud"
__all__ = ["DEFAULT_API_KEY", "EndpointSession", "LocalCloud", "free_port"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:  # runs in the child before exec: SIGTERM when the supervisor dies
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


@dataclass
class LocalCloud:
    """Start with `start()`, stop with `stop()`; or use it as a context manager.

    state_dir=None keeps everything in memory (tests); a folder keeps it across restarts.
    """

    aws_port: int = 0
    api_port: int = 0
    api_key: str = DEFAULT_API_KEY
    api_keys: dict[str, str] = field(default_factory=dict)  # clinic name -> key, beside the admin key
    model_dir: Path | None = None
    retry_delay_s: int = 1
    state_dir: Path | None = None
    fresh: bool = False
    api_workers: int = 0  # 0: one per core
    log_dir: Path | None = None

    def __post_init__(self) -> None:
        self.aws_port = self.aws_port or free_port()
        self.api_port = self.api_port or free_port()
        self.api_workers = self.api_workers or os.cpu_count() or 1
        self.names = ResourceNames.for_stage(resources.LOCAL_STAGE)
        self.resources: LocalResources | None = None
        self.restored: dict = {}
        self.processes: dict[str, subprocess.Popen] = {}
        if self.state_dir is not None:
            self.state_dir = Path(self.state_dir)
        if self.log_dir is None:
            self.log_dir = (self.state_dir / "logs") if self.state_dir else Path(tempfile.mkdtemp(prefix="localcloud-"))
        self.log_dir = Path(self.log_dir)

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

    def key_spec(self) -> str:
        keys = {ADMIN_KEY_ID: self.api_key, **self.api_keys}
        return ",".join(f"{name}={key}" for name, key in keys.items())

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
            "QUEUE_ARN": self.resources.queue_arn,
            "DEAD_LETTER_QUEUE_URL": self.resources.dead_letter_queue_url,
            "POWERTOOLS_SERVICE_NAME": resources.SERVICE_NAME,
            "POWERTOOLS_METRICS_NAMESPACE": resources.METRICS_NAMESPACE,
            # Several containers share 2 cores: one inference thread each, as a small Lambda has.
            "INFERENCE_THREADS": os.environ.get("INFERENCE_THREADS", "1"),
            "LOCAL_RETRY_DELAY_S": str(self.retry_delay_s),
            # The handlers' JSON logs and EMF metric lines go to the log files under log_dir.
            "POWERTOOLS_LOG_LEVEL": os.environ.get("LOCAL_LOG_LEVEL", "WARNING"),
            "POWERTOOLS_METRICS_DISABLED": "false",
            "TF_CPP_MIN_LOG_LEVEL": "2",
        }
        if self.model_dir:
            env["MODEL_DIR"] = str(self.model_dir)
        # The model registry lives in the model bucket; training jobs run as local subprocesses
        # (localcloud/training_jobs.py). Workers look for a newly promoted model this often.
        env.update(MODEL_BUCKET=self.names.model_bucket, TRAINING_RUNNER=os.environ.get("TRAINING_RUNNER", "local"),
                   MODEL_REFRESH_SECONDS=os.environ.get("MODEL_REFRESH_SECONDS", "10"),
                   TRAINING_STATE_DIR=str((self.state_dir or self.log_dir) / "training-jobs"),
                   # the functions' EMF lines, gathered for the page's monitoring tab (metrics_view.py)
                   LOCAL_METRICS_FILE=os.environ.get("LOCAL_METRICS_FILE") or str(self.log_dir / "metrics.jsonl"))
        return env

    # ------------------------------------------------------------------ processes

    def _spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        out = (self.log_dir / f"{name}.log").open("ab")
        child_env = {**os.environ, **(env or {})}
        child_env["PYTHONUNBUFFERED"] = "1"
        process = subprocess.Popen([sys.executable, "-m", *args], stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, env=child_env, cwd=str(ROOT),
                                   preexec_fn=_die_with_parent)
        out.close()
        self.processes[name] = process
        return process

    def _wait_for(self, check, what: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"the {name} process exited ({process.returncode}); "
                                       f"see {self.log_dir / (name + '.log')}")
            try:
                if check():
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"{what} not ready after {timeout:.0f} s; see {self.log_dir}")

    def start(self) -> "LocalCloud":
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        args = ["localcloud.storage", "--port", str(self.aws_port)]
        if self.state_dir is not None:
            args += ["--state-dir", str(self.state_dir)]
            if self.fresh:
                args.append("--fresh")
        started = time.monotonic()
        self.timings: dict[str, float] = {}
        self._spawn("storage", args)
        # The API and the consumer import and load their model while storage starts: their
        # settings are known in advance (moto's queue URLs are endpoint/account/name).
        self.resources = self.expected_resources()
        env = self.handler_environment()
        self._spawn("consumer", ["localcloud.sqs_poller"], env)
        self._spawn("api", ["localcloud.gateway", "--port", str(self.api_port), "--workers",
                            str(self.api_workers), "--api-keys", self.key_spec()], env)
        self._wait_for(lambda: _port_open(self.aws_port), "the storage process")
        self.timings["storage up"] = time.monotonic() - started
        provisioned = provision(EndpointSession(self.session(), self.aws_endpoint), self.names)
        self.timings["provisioned"] = time.monotonic() - started
        if provisioned != self.resources:
            raise RuntimeError(f"moto named the resources {provisioned}, not {self.resources}")
        request = urllib.request.Request(f"{self.aws_endpoint}/_localcloud/restore?table={self.names.results_table}",
                                         method="POST", data=b"")
        with urllib.request.urlopen(request, timeout=120) as response:
            self.restored = json.loads(response.read())
        self.timings["restored"] = time.monotonic() - started
        os.environ.update({k: v for k, v in env.items() if k != "POWERTOOLS_METRICS_DISABLED"})
        self._wait_for(self._api_ready, "the API")
        self.timings["API up"] = time.monotonic() - started
        # The retrain schedule (resources.RETRAIN_SCHEDULE, or RETRAIN_SCHEDULE) runs here, in one process.
        from localcloud.schedule import start_local_schedule
        from screening.config import Settings

        self._schedule = start_local_schedule(self.client("s3"), Settings.from_env())

    def expected_resources(self) -> LocalResources:
        account = "123456789012"  # moto's default account
        return LocalResources(
            names=self.names,
            queue_url=f"{self.aws_endpoint}/{account}/{self.names.queue}",
            queue_arn=f"arn:aws:sqs:{REGION}:{account}:{self.names.queue}",
            dead_letter_queue_url=f"{self.aws_endpoint}/{account}/{self.names.dead_letter_queue}")

    def _api_ready(self) -> bool:
        request = urllib.request.Request(f"{self.api_url}/status", headers={"x-api-key": self.api_key})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status == 200
        except urllib.error.HTTPError:
            return False

    def stop(self) -> None:
        """API first (no new work), then the consumer, then storage (which writes its snapshot)."""
        if getattr(self, "_schedule", None):
            self._schedule.stop()
            self._schedule = None
        for name in ("api", "consumer", "storage"):
            process = self.processes.get(name)
            if process is None or process.poll() is not None:
                continue
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()

    def api_worker_pids(self) -> list[int]:
        import psutil

        master = self.processes.get("api")
        if master is None:
            return []
        return sorted(c.pid for c in psutil.Process(master.pid).children())

    def all_pids(self) -> list[int]:
        import psutil

        pids = []
        for process in self.processes.values():
            pids.append(process.pid)
            try:
                pids += [c.pid for c in psutil.Process(process.pid).children(recursive=True)]
            except psutil.NoSuchProcess:
                pass
        return pids

    def total_rss_bytes(self) -> int:
        import psutil

        total = 0
        for pid in self.all_pids():
            try:
                total += psutil.Process(pid).memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return total

    def __enter__(self) -> "LocalCloud":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class EndpointSession:
    """A boto3 session whose clients all talk to the local endpoint."""

    def __init__(self, session: boto3.session.Session, endpoint: str) -> None:
        self._session = session
        self._endpoint = endpoint

    def client(self, service: str):
        return self._session.client(service, endpoint_url=self._endpoint)
