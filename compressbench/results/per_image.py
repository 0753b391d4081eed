"""Per-image test correctness of a stage: ``<run dir>/stages/<NN_stage>/test_hits.npy``.

Every stage of every run scores the same test images in the same order, so two stages' accuracies can be
compared image by image (a paired interval, far narrower than one from the two accuracies alone). The file is a
plain ``.npy`` (uint8, or uint16 past 255 classes), read with ``allow_pickle=False``: per test image, 0 when
top-1 is wrong, else how many classes tie at the top logit with the label (1: a clean hit; credit 1/that).
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from compressbench.infra.atomic import atomic_write_bytes

FILE = "test_hits.npy"


def stage_dir(run_dir: str | os.PathLike, stage_index: int, stage: str) -> Path:
    """A stage's folder in a run (where the runner writes its files and history)."""
    return Path(run_dir) / "stages" / f"{int(stage_index):02d}_{stage}"


def write_hits(directory: str | os.PathLike, hits: np.ndarray) -> Path:
    """Write a stage's per-image hits atomically into its folder."""
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(hits), allow_pickle=False)
    return atomic_write_bytes(Path(directory) / FILE, buf.getvalue())


def read_credit(directory: str | os.PathLike) -> np.ndarray | None:
    """A stage's per-image top-1 credit (float64 in [0, 1]), or None where the run kept none (older runs) or
    the file is unreadable."""
    try:
        hits = np.load(Path(directory) / FILE, allow_pickle=False)
    except (OSError, ValueError):
        return None
    if hits.ndim != 1 or hits.dtype.kind not in "ui":
        return None
    hits = hits.astype(np.float64)
    return np.divide(1.0, hits, out=np.zeros_like(hits), where=hits > 0)
