"""tf_genai.outputs: every write leaves the previous file or the new one, whole.

Real failures, in real processes: a file-size limit (``RLIMIT_FSIZE``) that makes the write
fail half-way, a writer that raises after writing half, and ``SIGKILL`` after each step of
replacing an export folder. The run's own files (``model.keras``, pictures, backups, caches)
are checked the same way in ``tests/test_training.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tf_genai import outputs

REPO = Path(__file__).resolve().parents[1]


def _python(code: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    path = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], check=False,
                          env=dict(os.environ, PYTHONPATH=path), capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.subprocess
@pytest.mark.parametrize("writer", ["write_bytes", "write_json", "write_with"])
def test_a_write_over_the_file_size_limit_keeps_the_previous_file(tmp_path, writer):
    """The new content is larger than the process may write: the write fails with EFBIG and
    the previous file is still there, byte for byte, with no temporary file left beside it."""
    target = tmp_path / "history.json"
    old = json.dumps({"loss": [1.0, 0.5]})
    target.write_text(old)
    result = _python(f"""
        import resource, signal, sys
        from tf_genai import outputs
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a kill
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))
        big = {{"loss": [0.1] * 5000}}
        try:
            if {writer!r} == "write_bytes":
                outputs.write_bytes(sys.argv[1], repr(big).encode())
            elif {writer!r} == "write_json":
                outputs.write_json(sys.argv[1], big)
            else:
                outputs.write_with(sys.argv[1], lambda p: p.write_text(repr(big)))
        except OSError as err:
            print("failed:", err)
    """, str(target))
    assert result.returncode == 0, result.stderr
    assert "failed:" in result.stdout and "File too large" in result.stdout, result.stdout
    assert target.read_text() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.json"]


def test_a_writer_that_raises_half_way_keeps_the_previous_file(tmp_path):
    target = tmp_path / "samples.png"
    target.write_bytes(b"old picture")

    def half_then_fail(path):
        path.write_bytes(b"new pic")
        raise RuntimeError("renderer crashed")

    with pytest.raises(RuntimeError, match="renderer crashed"):
        outputs.write_with(target, half_then_fail)
    assert target.read_bytes() == b"old picture"
    assert [p.name for p in tmp_path.iterdir()] == ["samples.png"]
    outputs.write_with(target, lambda p: p.write_bytes(b"new picture"))
    assert target.read_bytes() == b"new picture"


def test_temporary_names_keep_the_suffix_and_differ():
    a, b = outputs.temporary_path("run/model.keras"), outputs.temporary_path("run/model.keras")
    assert a != b and a.parent == Path("run") and a.name.startswith(".model.")
    assert a.suffix == ".keras"  # Keras refuses to save a model to another suffix


# The child replaces an export folder and SIGKILLs itself right after step number STOP (a
# rename, an exchange of two names, or a folder removal): what a kill at that moment leaves.
_KILL_AFTER_STEP = """
    import os, shutil, signal, sys
    from pathlib import Path
    from tf_genai import outputs

    stop, steps = int(sys.argv[2]), [0]

    def step(fn):
        def wrapped(*args, **kwargs):
            result = fn(*args, **kwargs)
            steps[0] += 1
            if steps[0] == stop:
                os.kill(os.getpid(), signal.SIGKILL)
            return result
        return wrapped

    os.replace, os.rename, shutil.rmtree = step(os.replace), step(os.rename), step(shutil.rmtree)
    if hasattr(outputs, "_exchange"):
        outputs._exchange = step(outputs._exchange)
    target = Path(sys.argv[1])
    staged = outputs.staging_dir(target)
    for name in ("saved_model.pb", "metadata.json"):
        (staged / name).write_text("new " + name)
    outputs.move_into_place(staged, target)
"""


@pytest.mark.subprocess
def test_an_export_replaced_under_sigkill_is_always_whole(tmp_path):
    """Kill after every step of replacing an export: the target folder is always a complete
    export, the old one or the new one (never missing, never only in a hidden folder)."""
    target = tmp_path / "export"
    files = ("saved_model.pb", "metadata.json")
    seen = set()
    for stop in range(1, 10):
        for leftover in tmp_path.iterdir():  # a fresh old export for every kill point
            shutil.rmtree(leftover)
        target.mkdir()
        for name in files:
            (target / name).write_text("old " + name)
        result = _python(_KILL_AFTER_STEP, str(target), str(stop))
        assert result.returncode in (0, -signal.SIGKILL), result.stderr
        assert target.is_dir(), f"killed after step {stop}: the export is gone"
        contents = {(target / name).read_text() for name in files}
        assert contents in ({"old " + n for n in files}, {"new " + n for n in files}), (
            f"killed after step {stop}: a mixed or partial export {contents}")
        seen.add(next(iter(contents)).split()[0])
        if result.returncode == 0:
            break
    else:
        pytest.fail("move_into_place took more than 9 steps")
    assert "new" in seen
