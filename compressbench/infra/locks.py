"""Inter-process file locks (the one importer of ``filelock``, used on Windows; ``flock`` on POSIX).

Locks are advisory ``flock``/``msvcrt`` locks held by the process: the OS releases them when the holder dies,
so a ``kill -9`` never leaves a stale lock behind (only an empty file, which the next holder removes).
"""
from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)


@contextmanager
def file_lock(path: str | os.PathLike, what: str = "", poll_s: float = 30.0) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if absent) for the ``with`` body; the file is removed again.

    Waits as long as needed, saying once what it waits for, since the holder may be training a baseline.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fcntl is None:  # Windows: filelock's msvcrt lock (the file stays; it cannot be unlinked while open)
        with _filelock(path, what, poll_s):
            yield
        return
    fd = _acquire(path, what)
    try:
        yield
    finally:
        # Unlink while still holding it, then release: a waiter that locked this inode sees the file gone and
        # retries on a fresh one (``_acquire``), so one lock file per key never accumulates.
        with contextlib.suppress(OSError):
            os.unlink(path)
        os.close(fd)


def _acquire(path: Path, what: str) -> int:
    """An fd holding ``flock(LOCK_EX)`` on the file now at ``path`` (not on one a previous holder unlinked)."""
    warned = False
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not warned:
                    log.warning("waiting for another process that holds %s ...", what or path)
                    warned = True
                fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                if os.stat(path).st_ino == os.fstat(fd).st_ino:
                    return fd
            except FileNotFoundError:
                pass
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # we locked a file its holder has since removed: lock the one at ``path`` now


@contextmanager
def _filelock(path: Path, what: str, poll_s: float) -> Iterator[None]:
    from filelock import FileLock, Timeout

    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.warning("waiting for another process that holds %s ...", what or path)
        while True:
            try:
                lock.acquire(timeout=poll_s)
                break
            except Timeout:
                continue
    try:
        yield
    finally:
        lock.release()
