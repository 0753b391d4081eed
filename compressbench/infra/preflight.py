"""Checks that run before any training: every output place is writable and has room for what we will write.

Failing after an hour of training because the disk is full or the cache dir is read-only loses the hour;
failing in the first second loses nothing.
"""
from __future__ import annotations

import errno
import os
import shutil
import uuid
from collections.abc import Iterable
from pathlib import Path

MARGIN_BYTES = 50 * 2**20  # logs, CSVs, plots and the pickle overhead of small models


# The errors that say "this place cannot take our files" (not a bug, not a stage's failure): full disk or
# quota, read-only file system, no permission, a file where a folder should be.
OUTPUT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR})
RUN_DIR_KEY = "hydra.run.dir (or hydra.sweep.dir)"  # the key that moves a run's (or sweep job's) folder
RESERVE_NAME = ".compressbench-reserve"
RESERVE_BYTES = 256 * 1024  # room for status.json, error.txt and the log's last lines on a full disk


class PreflightError(RuntimeError):
    """An output location that cannot take what the run will write; the message says what to change."""


class DataUnavailable(RuntimeError):
    """A dataset's files are not there and cannot be had (no such folder, offline); the message says where to
    put them and how to get them. Ends the command like a config error: one line, exit 2, no run folder left."""


class OutputError(PreflightError):
    """A write failed mid-run because its place is full, read-only or not ours; the message names the key."""


def ensure_writable(directory: Path, key: str) -> None:
    """Create ``directory`` and write/delete a probe file in it, or raise PreflightError naming ``key``."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".probe-{uuid.uuid4().hex}"
        with open(probe, "wb") as f:
            f.write(b"ok")
            f.flush()
            os.fsync(f.fileno())
        probe.unlink()
    except OSError as e:
        raise PreflightError(f"cannot write to {directory} ({e.strerror or e}); make it writable or point "
                             f"{key} at another directory") from None


def expected_bytes(params: int, stages: int) -> int:
    """A generous estimate of what a run writes: per stage, fp32 weights in the cache entry, best.pt, last.pt
    and the resume state (weights twice + optimizer moments)."""
    return stages * params * 4 * 7 + MARGIN_BYTES


def ensure_space(directory: Path, needed: int, key: str) -> None:
    free = shutil.disk_usage(directory).free
    if free < needed:
        raise PreflightError(
            f"not enough free space in {directory}: this run may write ~{needed / 2**20:.0f} MiB there and "
            f"{free / 2**20:.0f} MiB are free; free some space or point {key} at a larger disk")


def preflight(run_dir: Path, cache_dir: Path | None, params: int, stages: int) -> None:
    """Writable run and cache dirs with room for ``stages`` checkpoints of a ``params``-parameter model."""
    needed = expected_bytes(params, stages)
    places = [(run_dir, RUN_DIR_KEY)]
    if cache_dir is not None:
        places.append((cache_dir, "paths.cache_dir"))
    for directory, key in places:
        ensure_writable(directory, key)
    if cache_dir is not None and _same_device(run_dir, cache_dir):
        ensure_space(run_dir, 2 * needed, "hydra.run.dir and paths.cache_dir")
    else:
        for directory, key in places:
            ensure_space(directory, needed, key)


def _same_device(a: Path, b: Path) -> bool:
    try:
        return os.stat(a).st_dev == os.stat(b).st_dev
    except OSError:
        return False


def output_error_of(e: BaseException) -> OSError | None:
    """The OSError with an ``OUTPUT_ERRNOS`` errno behind ``e`` (itself, its cause or its context), if any."""
    seen: set[int] = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in OUTPUT_ERRNOS:
            return e
        e = e.__cause__ or e.__context__
    return None


def describe_output_error(e: OSError, places: Iterable[tuple[Path, str]]) -> str:
    """One line: what could not be written, why, and the key that points the run elsewhere."""
    where = Path(e.filename) if e.filename else None
    key = next((k for directory, k in places if where is not None and _is_under(where, directory)), None)
    full = e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS)  # only a write fails these ways
    what = (f"cannot {'write' if full else 'access'} {where}" if where else
            f"a file {'write' if full else 'access'} failed")
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        fix = "free some space" + (f" or point {key} at a larger disk" if key else "")
    else:
        fix = "make it writable" + (f" or point {key} at another directory" if key else "")
    return f"{what} ({e.strerror or e}); {fix}"


def _is_under(path: Path, directory: Path) -> bool:
    try:
        path.resolve().relative_to(directory.resolve())
        return True
    except (ValueError, OSError):
        return False


class Reserve:
    """A small ballast file in the run dir, deleted when a write fails for lack of space, so that the run can
    still say how it ended (status.json, error.txt) on the disk it filled."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / RESERVE_NAME
        try:
            with open(self.path, "wb") as f:
                f.write(b"\0" * RESERVE_BYTES)
        except OSError:  # no room even for this: the preflight said so already, or the write will
            self.release()

    def release(self) -> None:
        try:
            self.path.unlink()
        except OSError:
            pass


def check_creatable(directory: Path, key: str) -> None:
    """Raise PreflightError unless ``directory`` exists writable or could be made: its nearest existing
    ancestor is a writable folder on a writable file system. Creates nothing (Hydra makes the folder)."""
    existing = directory
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise PreflightError(f"cannot create {directory}: {existing} is a file, not a folder; point {key} at "
                             f"a folder")
    read_only = bool(os.statvfs(existing).f_flag & os.ST_RDONLY)
    if read_only or not os.access(existing, os.W_OK | os.X_OK):
        why = "is on a read-only file system" if read_only else "is not writable by this user"
        raise PreflightError(f"cannot write to {directory}: {existing} {why}; make it writable or point "
                             f"{key} at another directory")
