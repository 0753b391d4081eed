"""Inter-process file locks (the one importer of ``filelock``).

Locks are advisory ``fcntl``/``msvcrt`` locks held by the process: the OS releases them when the holder dies,
so a ``kill -9`` never leaves a stale lock behind.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

log = logging.getLogger(__name__)


@contextmanager
def file_lock(path: str | os.PathLike, what: str = "", poll_s: float = 30.0) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if absent) for the ``with`` body.

    Waits as long as needed, saying once what it waits for, since the holder may be training a baseline.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
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
