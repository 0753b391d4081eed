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
    "effective_macs latency_ms_p50 latency_ms_p95 throughput_ips speedup_vs_reference runtime device threads wall_s "
    "cache_hit torch_version git_sha overrides"
).split()

# Renamed columns (issue 25: a bare ``speedup`` said nothing of its baseline while the printed table showed another
# one under that name): old name → new. Readers of results tables written before the rename see the new names.
RENAMED: dict[str, str] = {"speedup": "speedup_vs_reference", "speedup_iqr": "speedup_vs_reference_iqr",
                           "speedup_lo": "speedup_vs_reference_lo", "speedup_hi": "speedup_vs_reference_hi"}

# Documented additions (README "Results columns"), placed after the core columns.
EXTRA_COLUMNS: list[str] = (
    # What each speedup is paired against (issue 25): the reference on the row's own runtime, named, and the fastest
    # fp32 route, named.
    "speedup_vs_reference_iqr reference_runtime speedup_vs_best_fp32 best_fp32_runtime "
    "timing_rounds measure_reused throughput_speedup throughput_threads batch_size reference_stage "
    "macs_reduction_pct params_reduction_pct test_loss precision stage_key error"
).split() + (
    # What was measured (issue 26): the file each size is of, the form timed, and the timings' 95% intervals.
    "size_file deployable_bytes deployable_file artifact_sha256 timed_form timing_s speedup_vs_reference_lo "
    "speedup_vs_reference_hi fastest_route speedup_vs_best_fp32_lo speedup_vs_best_fp32_hi"
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


def upgrade(row: Mapping[str, Any]) -> dict[str, Any]:
    """``row`` under today's column names: an older table's renamed columns (``RENAMED``) give their values to the
    new names (where the new one is empty or absent) and are dropped."""
    out = {k: v for k, v in row.items() if k not in RENAMED}
    for old, new in RENAMED.items():
        if old in row and out.get(new) in (None, ""):
            out[new] = row[old]
    return out


def read_csv(path: str | os.PathLike) -> list[dict[str, str]]:
    """The rows of a CSV table; a results table written before a column was renamed reads under the new names."""
    with open(path, newline="", encoding="utf-8") as f:
        return [upgrade(row) for row in csv.DictReader(f)]


def write_results(path: str | os.PathLike, rows: list[Mapping[str, Any]]) -> Path:
    """A results table: every core column present (empty where not applicable), in the documented order."""
    return write_csv(path, rows, ordered_columns(rows))
