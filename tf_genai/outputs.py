"""Writing what a user keeps: refuse to overwrite unless asked, and never leave half a file.

The one copy of the refuse-to-overwrite rule (run directories, exports, TFLite files, sample
files) and of the write-then-rename steps that make a kill or a failure leave either the old
output or the new one, whole. Depends on nothing of ours but :mod:`tf_genai.errors`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from tf_genai.errors import OutputError, OutputExistsError


def check_file(path: str | os.PathLike, overwrite: bool) -> Path:
    """``path``, unless it exists and ``overwrite`` is False (:class:`OutputExistsError`)."""
    path = Path(path)
    if path.is_dir():
        raise OutputExistsError(f"{str(path)!r} is a directory; give a file name")
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{str(path)!r} exists; pass overwrite=True to replace it")
    return path


def check_dir(path: str | os.PathLike, overwrite: bool, *, resume: bool = False,
              what: str = "output directory") -> Path:
    """``path``, unless it is a file, or a non-empty directory and neither flag is set."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputExistsError(f"{what} {str(path)!r} exists and is not a directory")
    if path.is_dir() and any(path.iterdir()) and not (overwrite or resume):
        extra = ", or resume=True to continue the run in it" if what == "run" else ""
        raise OutputExistsError(
            f"{what} {str(path)!r} is not empty; pass overwrite=True to replace it{extra}")
    return path


def check_writable(path: str | os.PathLike, *, what: str = "output") -> Path:
    """``path``, if a file or folder can be made there; else :class:`OutputError` naming why.

    The nearest existing folder on the way to ``path`` is asked for real: a probe folder is made
    in it and removed at once (permission bits alone do not tell: root passes them, a read-only
    mount or ``/proc`` refuse anyway). Nothing is left behind, so a command can check its
    outputs before it loads anything, and fail in a line instead of after minutes of work.
    """
    path = Path(path)
    existing = path if path.is_dir() else path.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(f"cannot write {what} {str(path)!r}: {str(existing)!r} is a file, "
                          "not a folder")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".tf_genai-probe-", dir=existing))
    except OSError as err:
        raise OutputError(f"cannot write {what} {str(path)!r}: {str(existing)!r} refuses new "
                          f"files ({err.strerror})") from None
    return path


def default_mode(directory: bool = True) -> int:
    """The permissions a new file or folder gets under the process umask (0o755 / 0o644)."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


def staging_dir(target: Path) -> Path:
    """A new empty folder beside ``target`` with the usual permissions (mkdtemp gives 0700,
    which a model server running as another user cannot read once it is moved into place)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    os.chmod(staged, default_mode())
    return staged


def move_into_place(staged: Path, target: Path) -> None:
    """Replace ``target`` by ``staged``; the old ``target`` survives until the move succeeds."""
    backup = None
    if target.exists() or target.is_symlink():
        backup = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        backup.rmdir()
        os.replace(target, backup)
    try:
        os.replace(staged, target)
    except BaseException:
        if backup is not None:
            os.replace(backup, target)
        raise
    if backup is not None:
        if backup.is_dir():
            shutil.rmtree(backup, ignore_errors=True)
        else:
            backup.unlink()


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and a rename (all or nothing)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # two writers never share one
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path
