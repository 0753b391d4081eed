"""Checks that run before any training: every output place is writable and has room for what we will write.

Failing after an hour of training because the disk is full or the cache dir is read-only loses the hour;
failing in the first second loses nothing.
"""
from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

MARGIN_BYTES = 50 * 2**20  # logs, CSVs, plots and the pickle overhead of small models


class PreflightError(RuntimeError):
    """An output location that cannot take what the run will write; the message says what to change."""


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
    places = [(run_dir, "hydra.run.dir (or the sweep dir)")]
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
