"""Training jobs in the local cloud: the SageMaker contract, run as a subprocess.

What CreateTrainingJob does on AWS, done locally with the same entry point
(`python -m training.sagemaker train`):

- a folder per job under the state dir, laid out like /opt/ml (input/data/<channel>,
  input/config/hyperparameters.json, model/, output/), and the SM_* variables;
- the channels downloaded from the model bucket: the labelled uploads and the
  serving champion's model folder;
- afterwards the job's model folder is filed in the registry exactly as the
  promote function files SageMaker's model.tar.gz (`register_model_files`).

Job state lives in the model bucket (training-jobs/<job>.json), not in memory,
so every API worker process sees the same jobs; one job at a time is enforced
by a conditional PUT (If-None-Match) of training-jobs/running.json.

Entry points: `LocalTrainingJobs(s3, settings)` (start / describe / running),
and `python -m localcloud.training_jobs run <job>`, the detached runner that
`start` spawns.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from screening import model_registry
from screening.config import Settings
from screening.retraining import (COMPLETED, FAILED, JOB_STATE_PREFIX, RUNNING, JobAlreadyRunning,
                                  ensure_champion, job_name, job_status, model_files_from_folder,
                                  register_model_files, uploads_prefix)
from screening.training_contract import CHAMPION_CHANNEL, UPLOADS_CHANNEL, parse_metric_lines

ROOT = Path(__file__).resolve().parent.parent
LOCK_KEY = JOB_STATE_PREFIX + "running.json"
HEARTBEAT_SECONDS = 2.0
# A runner that has not written its record for this long is dead (killed with the cloud).
STALE_AFTER_SECONDS = 120.0


def subprocess_env(**extra: str) -> dict[str, str]:
    """This process's environment, with the project's packages importable from any cwd."""
    path = os.pathsep.join(p for p in (str(ROOT / "functions"), str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def state_key(job: str) -> str:
    return f"{JOB_STATE_PREFIX}{job}.json"


def is_precondition_failure(exc: Exception) -> bool:
    return getattr(exc, "response", {}).get("Error", {}).get("Code") in ("PreconditionFailed", "412")


class LocalTrainingJobs:
    def __init__(self, s3, settings: Settings, python: str = sys.executable) -> None:
        self.s3, self.settings, self.python = s3, settings, python
        self.bucket = settings.model_bucket

    def _read(self, key: str) -> dict | None:
        try:
            return json.loads(self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())
        except Exception as exc:  # noqa: BLE001
            if model_registry.is_not_found(exc):
                return None
            raise

    def write_state(self, record: dict) -> None:
        record["updated_at"] = time.time()
        self.s3.put_object(Bucket=self.bucket, Key=state_key(record["training_job"]),
                           Body=json.dumps(record).encode(), ContentType="application/json")

    def running(self) -> str | None:
        lock = self._read(LOCK_KEY)
        if lock is None:
            return None
        record = self._read(state_key(lock["training_job"]))
        updated = (record or {}).get("updated_at", lock.get("created", 0))
        if record and record["status"] != RUNNING or time.time() - updated > STALE_AFTER_SECONDS:
            if record and record["status"] == RUNNING:  # its runner died without a word
                record.update(status=FAILED, failure_reason="the local runner stopped (cloud killed?)")
                self.write_state(record)
            self.s3.delete_object(Bucket=self.bucket, Key=LOCK_KEY)
            return None
        return lock["training_job"]

    def start(self, condition: str, hyperparameters: dict[str, str]) -> str:
        job = job_name(condition)
        lock = json.dumps({"training_job": job, "created": time.time()}).encode()
        for _ in range(2):
            try:
                self.s3.put_object(Bucket=self.bucket, Key=LOCK_KEY, Body=lock, IfNoneMatch="*")
                break
            except Exception as exc:  # noqa: BLE001
                if not is_precondition_failure(exc):
                    raise
                running = self.running()  # clears a stale lock
                if running:
                    raise JobAlreadyRunning(running)
        else:
            raise JobAlreadyRunning(self.running() or "unknown")
        try:
            champion = ensure_champion(self.s3, self.settings, condition)
            record = {"training_job": job, "condition": condition, "status": RUNNING, "champion": champion,
                      "hyperparameters": {"model_version": job, "condition": condition, **hyperparameters},
                      "metrics": {}, "failure_reason": None, "created_at": utc_now()}
            self.write_state(record)
            log = self.job_dir(job).parent / f"{job}.runner.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            with log.open("ab") as out:
                subprocess.Popen([self.python, "-m", "localcloud.training_jobs", "run", job], cwd=ROOT,
                                 env=subprocess_env(), stdout=out, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, start_new_session=True)
        except BaseException:
            self.s3.delete_object(Bucket=self.bucket, Key=LOCK_KEY)
            raise
        return job

    def describe(self, job: str) -> dict | None:
        record = self._read(state_key(job))
        if record is None:
            return None
        extra = {k: record.get(k) for k in ("version", "promoted", "decision", "champion", "created_at")
                 if k in record}
        return job_status(job, record["status"], record.get("metrics", {}), record.get("failure_reason"),
                          record.get("hyperparameters", {}), **extra)

    def job_dir(self, job: str) -> Path:
        base = Path(self.settings.training_state_dir or ROOT / ".localcloud")
        return base / "training-jobs" / job

    # ---- the runner ----------------------------------------------------------------------------

    def _download(self, prefix: str, dest: Path, names: tuple[str, ...] | None = None) -> int:
        count = 0
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                relative = obj["Key"][len(prefix):]
                if not relative or ".." in relative or (names is not None and relative not in names):
                    continue
                target = dest / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                self.s3.download_file(self.bucket, obj["Key"], str(target))
                count += 1
        return count

    def run(self, job: str, timeout_s: float | None = None) -> dict:
        """Run one job to its end and file its model; returns the final record."""
        record = self._read(state_key(job))
        if record is None:
            raise LookupError(f"no job {job}")
        condition = record["condition"]
        opt_ml = self.job_dir(job)
        shutil.rmtree(opt_ml, ignore_errors=True)
        channels = opt_ml / "input" / "data"
        env = subprocess_env(OPT_ML_ROOT=str(opt_ml), SM_MODEL_DIR=str(opt_ml / "model"),
                             SM_OUTPUT_DATA_DIR=str(opt_ml / "output" / "data"),
                             SM_CHECKPOINT_DIR=str(opt_ml / "checkpoints"), TF_CPP_MIN_LOG_LEVEL="3")
        # Like SageMaker's network isolation: the job gets its data as folders, no AWS access.
        env = {k: v for k, v in env.items() if not k.startswith("AWS_")}
        try:
            if self._download(uploads_prefix(condition), channels / UPLOADS_CHANNEL):
                env[f"SM_CHANNEL_{UPLOADS_CHANNEL.upper()}"] = str(channels / UPLOADS_CHANNEL)
            if record.get("champion"):
                self._download(model_registry.version_prefix(condition, record["champion"]),
                               channels / CHAMPION_CHANNEL, model_registry.SERVING_FILES)
                env[f"SM_CHANNEL_{CHAMPION_CHANNEL.upper()}"] = str(channels / CHAMPION_CHANNEL)
            config = opt_ml / "input" / "config"
            config.mkdir(parents=True, exist_ok=True)
            (config / "hyperparameters.json").write_text(json.dumps(record["hyperparameters"]))
            log_path = opt_ml / "output" / "job.log"
            log_path.parent.mkdir(parents=True, exist_ok=True)
            with log_path.open("w") as log:
                process = subprocess.Popen([self.python, "-m", "training.sagemaker", "train"], cwd=ROOT,
                                           env=env, stdout=log, stderr=subprocess.STDOUT,
                                           stdin=subprocess.DEVNULL)
                deadline = time.monotonic() + (timeout_s or self.settings.training_max_runtime_seconds)
                while process.poll() is None:
                    time.sleep(HEARTBEAT_SECONDS)
                    record["metrics"] = parse_metric_lines(log_path.read_text(errors="replace"))
                    self.write_state(record)
                    if time.monotonic() > deadline:
                        process.kill()
                        process.wait()
                        (opt_ml / "output" / "failure").write_text("MaxRuntimeExceeded")
            record["metrics"] = parse_metric_lines(log_path.read_text(errors="replace"))
            if process.returncode == 0:
                registration = register_model_files(self.s3, self.settings, condition,
                                                    model_files_from_folder(opt_ml / "model"))
                decision = json.loads((opt_ml / "model" / "gate.json").read_text())
                record.update(status=COMPLETED, version=registration.version, promoted=registration.promoted,
                              decision=decision)
            else:
                failure = opt_ml / "output" / "failure"
                record.update(status=FAILED, failure_reason=(
                    failure.read_text() if failure.is_file() else f"the job exited with {process.returncode}"))
        except Exception as exc:  # noqa: BLE001 - the record must say why
            record.update(status=FAILED, failure_reason=f"{type(exc).__name__}: {exc}")
        finally:
            record["ended_at"] = utc_now()
            self.write_state(record)
            lock = self._read(LOCK_KEY)
            if lock and lock.get("training_job") == job:
                self.s3.delete_object(Bucket=self.bucket, Key=LOCK_KEY)
        return record


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or argv[0] != "run":
        print("usage: python -m localcloud.training_jobs run <job>", file=sys.stderr)
        return 2
    import boto3

    settings = Settings.from_env()
    record = LocalTrainingJobs(boto3.client("s3"), settings).run(argv[1])
    print(json.dumps({k: record.get(k) for k in ("training_job", "status", "version", "promoted",
                                                 "failure_reason")}), flush=True)
    return 0 if record["status"] == COMPLETED else 1


if __name__ == "__main__":
    sys.exit(main())
