"""Reading a tree of runs: every ``results.csv``, ``status.json`` and ``split.json`` below a folder.

Tolerant and idempotent: unreadable files are listed, not fatal; rows are de-duplicated on
(run_id, stage_index) keeping the newest; a job that died before writing a row is found by its ``status.json``.
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from compressbench.results.per_image import read_credit, stage_dir
from compressbench.results.table import RENAMED

# What a job's status.json may say, and how the report names it. A job still "running" is in progress (it may
# be the very run writing this report), never failed.
JOB_STATES = {"ok": "done", "running": "in progress", "failed": "failed", "interrupted": "failed"}


def _rel(path: Path, root: Path) -> str:
    return str(path.relative_to(root)) if path != root else "."


def collect(root: str | Path) -> tuple[pd.DataFrame, list[dict[str, Any]], list[str]]:
    """(all rows, per-job statuses, unreadable files) under ``root``.

    Rows gain ``run_dir`` (relative to ``root``) and, where the run wrote a ``split.json``, ``test_images``
    (the size of the test split: what an accuracy's interval needs).
    """
    root = Path(root)
    frames, problems = [], []
    for path in sorted(root.rglob("results.csv")):
        try:
            # copy(): read_csv leaves a wide table in many blocks; the columns added below would warn of it
            df = pd.read_csv(path, dtype={"git_sha": str, "overrides": str, "error": str, "method": str,
                                           "run_dir": str}).copy()  # a sweep job "0" is a folder, not 0.0
        except pd.errors.EmptyDataError:
            continue  # an empty table (a report of nothing) is not a problem
        except Exception as e:  # noqa: BLE001 — a half-finished job must not break the summary
            problems.append(f"{path}: {e}")
            continue
        df = upgrade_columns(df)
        if "run_id" not in df or "stage_index" not in df:
            problems.append(f"{path}: not a results table (no run_id/stage_index column)")
            continue
        if "run_dir" not in df:  # a findings copy keeps the run dirs it was made from
            df["run_dir"] = _rel(path.parent, root)
        n = count_test_images(path.parent)
        if n is not None:
            df["test_images"] = n
        df["_mtime"] = path.stat().st_mtime
        frames.append(df)
    rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if not rows.empty:
        rows["_order"] = rows["run_dir"].astype(str).map(_natural)  # sweep job 10 after job 9, not after 1
        rows = (rows.sort_values("_mtime", kind="stable").drop_duplicates(["run_id", "stage_index"], keep="last")
                .sort_values(["experiment", "_order", "stage_index"], kind="stable")
                .drop(columns=["_mtime", "_order"]).reset_index(drop=True))
    jobs = []
    for path in sorted(root.rglob("status.json")):
        try:
            job = json.loads(path.read_text())
        except Exception as e:  # noqa: BLE001
            problems.append(f"{path}: {e}")
            continue
        if not isinstance(job, dict):
            problems.append(f"{path}: not a status object")
            continue
        job["run_dir"] = _rel(path.parent, root)
        job["state"] = JOB_STATES.get(str(job.get("status")), "failed")
        jobs.append(job)
    return rows, jobs, problems


def upgrade_columns(df: pd.DataFrame) -> pd.DataFrame:
    """A table written before a column was renamed (``RENAMED``): its old columns' values under the new names,
    filling the new column where it is empty, so old and new runs read alike."""
    for old, new in RENAMED.items():
        if old in df:
            df[new] = df[new].fillna(df[old]) if new in df else df[old]
    return df.drop(columns=[c for c in RENAMED if c in df])


def _natural(text: str) -> str:
    return re.sub(r"\d+", lambda m: m.group().zfill(10), text)


def count_test_images(run_dir: Path) -> int | None:
    """The number of test images a run scored (``split.json``: ``sizes.test``), or None."""
    try:
        n = json.loads((run_dir / "split.json").read_text())["sizes"]["test"]
        return int(n) if int(n) > 0 else None
    except (OSError, ValueError, KeyError, TypeError):
        return None




def credit_reader(root: str | Path) -> Callable[[Mapping[str, Any]], np.ndarray | None]:
    """``credit(row)``: a collected row's per-image test credit, read from its run folder under ``root`` (None
    where the run kept none: runs made before per-image results were written, or a findings copy without them)."""
    root = Path(root)

    def credit(row: Mapping[str, Any]) -> np.ndarray | None:
        run_dir, index, stage = row.get("run_dir"), row.get("stage_index"), row.get("stage")
        if any(v is None or (isinstance(v, float) and v != v) for v in (run_dir, index, stage)):
            return None
        return read_credit(stage_dir(root / str(run_dir), int(index), str(stage)))

    return credit
