"""Files the user names: read them with one clear error, write them all-or-nothing.

:func:`atomic_open` is the project's one writer: every table, checkpoint, CSV, figure and config goes
through it, so an error or an interrupt never leaves a half-written file or erases the previous one.
:func:`locked` serialises read-modify-write of one file between processes (two ``leakage`` runs on one
table): atomic writes alone keep each file whole, but the later writer would drop the earlier's changes.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator

import filelock

from common.errors import UserInputError

LOCK_TIMEOUT_S = 300.0


def read_text(path: str | os.PathLike, what: str) -> str:
    """The UTF-8 text of a file the user named; a missing, unreadable or binary file is a user error."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UserInputError(f"{path}: cannot read {what} ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise UserInputError(f"{path}: cannot read {what} (not UTF-8 text)") from None


def check_writable(path: str | os.PathLike, option: str = "--out", folder: bool = False) -> None:
    """Fail fast, before long work, if ``path`` (a file, or with ``folder`` a folder) could not be written.

    A file target must not be an existing folder, and the nearest existing ancestor (of a folder target:
    the folder itself) must be a folder in which a file can really be created. That is tried with a
    hidden probe file, removed at once: permission bits say nothing for root, nor about read-only or
    virtual file systems (``/proc``). Nothing is left behind.
    """
    path = Path(path)
    if not folder and path.is_dir():
        raise UserInputError(f"{option} {path}: is a folder; give a file name")
    ancestor = path if folder else path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise UserInputError(f"{option} {path}: {ancestor} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".splitpriv-probe-", dir=ancestor)
    except OSError as exc:
        raise UserInputError(f"{option} {path}: cannot write in {ancestor} ({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(probe)


def _current_umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **open_kwargs: Any) -> Iterator[IO]:
    """Open a temporary file beside ``path`` for writing; on success rename it onto ``path``.

    The file gets the usual permissions (``0o666 & ~umask``; ``mkstemp`` alone makes 0600). If the
    ``with`` body raises (or is interrupted), the temporary file is removed and a previous ``path`` is
    left intact: nothing half-written is ever visible. The parent folder is created when missing.
    A folder that cannot be created or written raises :class:`UserInputError` naming ``path``.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes whole files; mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise UserInputError(f"{path}: cannot write here ({exc.strerror or exc})") from None
    try:
        with os.fdopen(fd, mode, **open_kwargs) as fh:
            yield fh
        os.chmod(tmp, 0o666 & ~_current_umask())
        try:
            os.replace(tmp, path)
        except OSError as exc:
            raise UserInputError(f"{path}: cannot write here ({exc.strerror or exc})") from None
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def lock_path(path: str | os.PathLike) -> Path:
    """The sidecar lock file of ``path``: ``.<name>.lock`` beside it (kept; it holds no data)."""
    path = Path(path)
    return path.with_name(f".{path.name}.lock")


@contextlib.contextmanager
def locked(path: str | os.PathLike, timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold an exclusive inter-process lock on ``path`` for a read-modify-write (``flock`` on a sidecar
    file, :func:`lock_path`, through the ``filelock`` package that torch depends on).

    The lock is tied to the sidecar, not to ``path`` itself, because :func:`atomic_open` replaces
    ``path`` by a new file on every write. The operating system releases it when the holder exits,
    killed or not. Waiting longer than ``timeout_s`` raises :class:`UserInputError` naming the file.
    """
    sidecar = lock_path(path)
    lock = filelock.FileLock(sidecar, timeout=timeout_s)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise UserInputError(f"{path}: another process has held its lock ({sidecar}) for {timeout_s:.0f} s; "
                             "is another run writing it?") from None
    except OSError as exc:
        raise UserInputError(f"{path}: cannot lock it for writing ({exc.strerror or exc})") from None
    try:
        yield
    finally:
        lock.release()


def write_json(path: str | os.PathLike, table: dict[str, Any]) -> Path:
    """Write ``table`` as indented JSON to ``path`` with :func:`atomic_open` (all or nothing)."""
    with atomic_open(path) as fh:
        json.dump(table, fh, indent=1)
        fh.write("\n")
    return Path(path)
