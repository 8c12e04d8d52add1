"""Writing what a user keeps: refuse to overwrite unless asked, and never leave half a file.

The one copy of the refuse-to-overwrite rule (run directories, exports, TFLite files, sample
files) and the one place that writes through a temporary name. Every file tf_genai writes --
``model.keras``, ``history.json``, ``run.json``, pictures, exports, backups, caches -- is written
to a temporary name beside its target, flushed to disk (``fsync``), then renamed over the target
(``os.replace``, atomic on POSIX), and the folder's entry is flushed too. A kill, a full disk or a
file-size limit at any moment leaves either the previous file or the new one, whole; without the
``fsync`` a power loss soon after the rename could leave the new name pointing at an empty file
(ext4's default ``data=ordered`` mode orders data before metadata only for files it is told to
flush). Depends on nothing of ours but :mod:`tf_genai.errors`.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

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


def temporary_path(path: str | os.PathLike) -> Path:
    """A fresh hidden name beside ``path`` that keeps its suffix (Keras wants ``.keras``, NumPy
    appends ``.npy`` to other names) and names the process, so two writers never share one."""
    path = Path(path)
    token = os.urandom(4).hex()
    return path.with_name(f".{path.stem}.tmp-{os.getpid()}-{token}{path.suffix}")


def fsync_path(path: str | os.PathLike) -> None:
    """Flush a file's data, or a folder's entries, to disk."""
    fd = os.open(path, os.O_RDONLY)  # fsync needs no write access; folders open read-only
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(folder: str | os.PathLike) -> None:
    """Flush every file and folder under ``folder`` (a staged export or backup) to disk."""
    for root, _, files in os.walk(folder):
        for name in files:
            fsync_path(os.path.join(root, name))
        fsync_path(root)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write ``path``'s new content to; on success it replaces ``path``.

    The new file is flushed to disk before the rename and the folder after it, so ``path``
    always holds a complete file: the previous one (the write failed or the process died) or
    the new one. On an exception the temporary file is removed and the exception propagates.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    try:
        yield tmp
        fsync_path(tmp)
        os.replace(tmp, path)
        fsync_path(path.parent)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` whole or not at all (:func:`atomic_write`)."""
    with atomic_write(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` whole or not at all (:func:`atomic_write`)."""
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, data: Any, **dumps_kwargs: Any) -> Path:
    """Write ``data`` as JSON to ``path`` whole or not at all (indent 2 unless told)."""
    dumps_kwargs.setdefault("indent", 2)
    return write_text(path, json.dumps(data, **dumps_kwargs))


def file_digest(path: str | os.PathLike) -> str:
    """The hex SHA-256 of a file's content (recorded when a backup or a cache entry is written,
    checked before it is trusted)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_with(path: str | os.PathLike, save: Callable[[Path], Any]) -> Path:
    """``save(tmp)`` writes the file (``model.save``, ``fig.savefig``, ``image.save``, ...); the
    result replaces ``path`` whole or not at all (:func:`atomic_write`)."""
    with atomic_write(path) as tmp:
        save(tmp)
    return Path(path)


# Linux's renameat2(2) flag that swaps two names in one step (glibc >= 2.28; ext4, xfs, btrfs,
# tmpfs). Python's os module has no binding for it.
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap the names ``a`` and ``b`` atomically; False where the system cannot."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def move_into_place(staged: Path, target: Path) -> None:
    """Replace ``target`` by the folder (or file) ``staged``, flushed to disk first.

    Where the system can swap two names in one step (Linux), ``target`` is at every moment the
    old export or the new one. Elsewhere the old ``target`` is moved aside and back if the move
    fails, so only a kill between the two renames leaves it in a hidden ``.<name>.old-*`` folder.
    """
    if staged.is_dir():
        fsync_tree(staged)
    else:
        fsync_path(staged)
    if target.is_dir() and not target.is_symlink() and _exchange(staged, target):
        # ``staged`` now holds the old target.
        shutil.rmtree(staged, ignore_errors=True)
        fsync_path(target.parent)
        return
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
    fsync_path(target.parent)
    if backup is not None:
        if backup.is_dir():
            shutil.rmtree(backup, ignore_errors=True)
        else:
            backup.unlink()


def rotate_into_place(staged: Path, target: Path, previous: Path) -> None:
    """Make the folder ``staged`` the new ``target`` and the old ``target`` the new ``previous``
    (a backup's ``latest`` and ``previous``), flushed to disk first.

    At every moment ``target`` or ``previous`` holds a complete copy: a kill between the renames
    leaves ``target`` missing and its last version in ``previous``.
    """
    fsync_tree(staged)
    if target.exists():
        if previous.exists():
            shutil.rmtree(previous)
        os.replace(target, previous)
    os.replace(staged, target)
    fsync_path(target.parent)
