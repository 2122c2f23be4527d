"""The serving and training requirements resolve to wheels for the platforms they run on.

No Docker and no AWS here, so instead of building the images, pip resolves each
requirements file as the image's `pip install` would on its platform
(`--only-binary=:all: --platform ... --python-version 3.12`): Lambda's Python
3.12 runtime is Amazon Linux 2023 (glibc 2.34), x86_64 or arm64 (the stack's
`architecture`); the training image is python:3.12-slim (Debian 12, glibc
2.36) on SageMaker's x86_64 instances. A source-only or platform-less
dependency fails here instead of in `cdk deploy`. pip reads wheel metadata
only (`--dry-run --report`), with its cache under the test's tmp.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYTHON_VERSION = "3.12"
LAMBDA_GLIBC = (2, 34)  # Amazon Linux 2023, the python3.12 runtime and base image
TRAINING_GLIBC = (2, 36)  # Debian 12 (bookworm), python:3.12-slim
TARGETS = {  # id -> (requirements, machine, glibc)
    "serving-x86_64": ("functions/requirements.txt", "x86_64", LAMBDA_GLIBC),
    "serving-arm64": ("functions/requirements.txt", "aarch64", LAMBDA_GLIBC),
    "training-x86_64": ("training/requirements.txt", "x86_64", TRAINING_GLIBC),
}
MANYLINUX = re.compile(r"manylinux_(\d+)_(\d+)_(\w+)")
LEGACY_MANYLINUX = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
LEGACY = re.compile(r"(manylinux1|manylinux2010|manylinux2014)_(\w+)")


def platform_args(machine: str, glibc: tuple[int, int]) -> list[str]:
    """pip takes --platform literally: name every manylinux level the target's glibc runs."""
    args = [f"--platform=manylinux_2_{minor}_{machine}" for minor in range(5, glibc[1] + 1)]
    return args + [f"--platform={legacy}_{machine}" for legacy in LEGACY_MANYLINUX]


def resolve(requirements: str, machine: str, glibc: tuple[int, int], tmp_path: Path) -> subprocess.CompletedProcess:
    report = tmp_path / "report.json"
    command = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
               "--only-binary=:all:", *platform_args(machine, glibc), f"--python-version={PYTHON_VERSION}",
               "--implementation=cp", f"--target={tmp_path / 'target'}", f"--cache-dir={tmp_path / 'pip-cache'}",
               f"--report={report}", "--disable-pip-version-check", "-r", str(ROOT / requirements)]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def wheel_glibc(filename: str, machine: str) -> tuple[int, int] | None:
    """The lowest glibc a wheel's platform tags need (None: pure Python); fails on another machine."""
    tags = filename[:-len(".whl")].split("-")[-1].split(".")
    if tags == ["any"]:
        return None
    needs = []
    for tag in tags:
        if match := MANYLINUX.fullmatch(tag):
            assert match.group(3) == machine, filename
            needs.append((int(match.group(1)), int(match.group(2))))
        elif match := LEGACY.fullmatch(tag):
            assert match.group(2) == machine, filename
            needs.append(LEGACY_MANYLINUX[match.group(1)])
        else:
            raise AssertionError(f"{filename}: platform tag {tag} is not manylinux")
    return min(needs)


@pytest.mark.slow
@pytest.mark.parametrize("target", list(TARGETS))
def test_requirements_resolve_to_wheels_for_the_platform(target, tmp_path):
    requirements, machine, glibc = TARGETS[target]
    result = resolve(requirements, machine, glibc, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    installs = json.loads((tmp_path / "report.json").read_text())["install"]
    names = {i["metadata"]["name"].lower().replace("_", "-") for i in installs}
    pinned = {line.split("==")[0].strip().lower().replace("_", "-")
              for line in (ROOT / requirements).read_text().splitlines() if "==" in line}
    assert pinned <= names, pinned - names
    for item in installs:
        filename = item["download_info"]["url"].rsplit("/", 1)[-1]
        assert filename.endswith(".whl"), filename
        python_tag, abi_tag = filename.split("-")[-3:-1]
        assert python_tag in ("py3", "py2.py3", "cp312") or (abi_tag == "abi3" and python_tag <= "cp312"), filename
        needed = wheel_glibc(filename, machine)
        assert needed is None or needed <= glibc, f"{filename} needs glibc {needed}, the target has {glibc}"
    if requirements.startswith("functions"):
        assert not any(n.startswith("tensorflow") for n in names), "no TensorFlow in the Lambda image"


@pytest.mark.slow
def test_training_requirements_have_no_arm64_wheels(tmp_path):
    """tensorflow-cpu ships no aarch64 wheel, so the stack builds the training image for linux/amd64
    whatever the functions' `architecture` (tests/infra/test_deployability.py checks the asset)."""
    result = resolve("training/requirements.txt", "aarch64", TRAINING_GLIBC, tmp_path)
    assert result.returncode != 0 and "tensorflow-cpu" in result.stderr


def test_the_images_run_the_python_the_wheels_were_resolved_for():
    lambda_base = (ROOT / "functions" / "Dockerfile").read_text()
    training_base = (ROOT / "training" / "Dockerfile").read_text()
    assert f"FROM public.ecr.aws/lambda/python:{PYTHON_VERSION}\n" in lambda_base
    assert f"FROM python:{PYTHON_VERSION}-slim\n" in training_base
