"""Atomic file writes: a temp file in the target's directory, fsync, then ``os.replace``.

A writer that dies half-way leaves the previous good file in place and at most a ``.tmp-*`` file that no
reader ever opens (readers open the final name only).
"""
from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

TMP_PREFIX = ".tmp-"


def _read_umask() -> int:
    mask = os.umask(0)  # the only way to read it; set straight back (once, at import: umask is process-wide)
    os.umask(mask)
    return mask


UMASK = _read_umask()


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], Any]) -> Path:
    """Call ``write(file)`` on a temp file next to ``path`` and move it into place when it returns."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX + path.name + ".", dir=path.parent)
    try:
        # mkstemp makes 0600 files whatever the umask: give the file the mode open() would have, so a cache or
        # results folder shared by a team stays readable by it.
        os.fchmod(fd, 0o666 & ~UMASK)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with _suppress_oserror():
            os.unlink(tmp)
        if isinstance(e, OSError) and not e.filename:  # a failed write names no file: say which one it was
            raise OSError(e.errno, e.strerror, str(path)) from e
        raise
    return path


def remove_stale_temps(directory: str | os.PathLike, older_than_s: float = 24 * 3600,
                       every_s: float = 0) -> int:
    """Delete ``.tmp-*`` files that crashed writers left under ``directory`` (recursively), if older than
    ``older_than_s`` — a live writer's temp file is seconds old. With ``every_s``, walk the tree at most that
    often (a marker file keeps the time: a sweep's jobs do not each walk a large shared cache). Returns how many
    were removed."""
    import time

    now, directory = time.time(), Path(directory)
    marker = directory / ".stale-temps-checked"
    with _suppress_oserror():
        if every_s and now - marker.stat().st_mtime < every_s:
            return 0
    removed = 0
    for tmp in directory.rglob(TMP_PREFIX + "*"):
        with _suppress_oserror():
            if tmp.is_file() and now - tmp.stat().st_mtime > older_than_s:
                tmp.unlink()
                removed += 1
    with _suppress_oserror():
        marker.touch()
    return removed


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` that never leaves a half-written file under ``path``."""
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return atomic_write_bytes(path, buf.getvalue())


class _suppress_oserror:
    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> bool:
        return exc_type is not None and issubclass(exc_type, OSError)
