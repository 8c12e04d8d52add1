"""Shared pytest fixtures: repository paths and the real data the tests read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = Path(__file__).resolve().parents[1]
MNIST_DIR = (REPO_ROOT / ".." / "shared" / "data" / "mnist").resolve()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    if not MNIST_DIR.is_dir():
        pytest.fail(f"the shared MNIST data is missing at {MNIST_DIR}")
    return MNIST_DIR
