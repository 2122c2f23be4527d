"""Shared fixtures: real ACRIMA fundus photographs shipped in samples/ (CC BY 4.0)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples" / "acrima"
MODELS = ROOT / "models"
# the version serving must answer with: the bundled model card's
BUNDLED_MODEL_VERSION = json.loads((MODELS / "model.json").read_text())["version"]


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    return SAMPLES


@pytest.fixture(scope="session")
def sample_files() -> dict[str, list[Path]]:
    return {label: sorted((SAMPLES / label).glob("*.jpg")) for label in ("normal", "glaucoma")}


@pytest.fixture(scope="session")
def playwright_driver():
    """One Playwright driver for the whole run: a second sync_playwright() while the first one's
    event loop is open fails, so every browser test (tests/web, the API's docs page) launches
    its Chromium from this one."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        yield playwright
