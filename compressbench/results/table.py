"""The results row schema and atomic CSV writers.

Column names are a public interface (DESIGN.md §6): users' notebooks read them. Add columns freely; rename
none without a migration note. Units live in the names; accuracies are percent; empty means not applicable.
"""
from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from compressbench.infra.atomic import atomic_write_text

COLUMNS: list[str] = (
    "run_id experiment model dataset seed stage_index stage kind method status test_acc val_acc test_top5 params "
    "nonzero_params sparsity dense_bytes size_bytes gzip_bytes encoded_bytes compression_ratio macs "
    "effective_macs latency_ms_p50 latency_ms_p95 throughput_ips speedup runtime device threads wall_s "
    "cache_hit torch_version git_sha overrides"
).split()

# Documented additions (README "Results columns"), placed after the core columns.
EXTRA_COLUMNS: list[str] = (
    "speedup_iqr timing_rounds measure_reused throughput_speedup throughput_threads batch_size reference_stage "
    "macs_reduction_pct params_reduction_pct test_loss precision stage_key error"
).split() + (
    # What was measured (issue 26): the file each size is of, the form timed, and the timings' 95% intervals.
    "size_file deployable_bytes deployable_file artifact_sha256 timed_form timing_s speedup_lo speedup_hi "
    "fastest_route speedup_vs_best_fp32_lo speedup_vs_best_fp32_hi"
).split()
# Beside the accuracies (issue 26): how many images tie for the top logit (each credited 1/k, see measure.accuracy).
EXTRA_COLUMNS += ["test_ties", "val_ties"]


def ordered_columns(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """Core columns, then documented extras, then any stage-specific keys in first-seen order."""
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row))
    known = COLUMNS + EXTRA_COLUMNS
    return known + [c for c in seen if c not in known]


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float) and value != value:  # NaN: not measured, never a number
        return ""
    return value


def csv_text(rows: list[Mapping[str, Any]], columns: list[str] | None = None) -> str:
    """``rows`` as CSV text; ``columns`` default to every key in first-seen order."""
    columns = columns or list(dict.fromkeys(k for row in rows for k in row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(row.get(k)) for k in columns})
    return buf.getvalue()


def csv_bytes(rows: list[Mapping[str, Any]], columns: list[str] | None = None) -> bytes:
    """``rows`` as CSV bytes: a stage's table file, handed to the pipeline to write."""
    return csv_text(rows, columns).encode("utf-8")


def write_csv(path: str | os.PathLike, rows: list[Mapping[str, Any]], columns: list[str] | None = None) -> Path:
    """Write ``rows`` as CSV atomically (the previous file survives a crash mid-write)."""
    return atomic_write_text(path, csv_text(rows, columns))


def read_csv(path: str | os.PathLike) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def write_results(path: str | os.PathLike, rows: list[Mapping[str, Any]]) -> Path:
    """A results table: every core column present (empty where not applicable), in the documented order."""
    return write_csv(path, rows, ordered_columns(rows))
