"""Shared pytest fixtures: repository paths and the real data the tests read."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Tests never write into the user's home cache: classifiers trained by tests live in a
# per-session temporary folder (shared by the tests of one session, so each trains once).
os.environ["TF_GENAI_CACHE"] = tempfile.mkdtemp(prefix="tf_genai_test_cache_")

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
