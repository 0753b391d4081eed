"""Aggregate results into tables and plots: ``python -m compressbench.report DIR``.

DIR may be one run, a sweep, or a tree of them. The aggregator is idempotent and tolerant: every
``results.csv`` below DIR is read (unreadable ones are listed, not fatal), rows are de-duplicated on
(run_id, stage_index) keeping the newest, jobs that failed before writing a row are found through their
``status.json``, and NaN/empty values are never plotted as numbers.
"""
from __future__ import annotations

import argparse
import io
import json
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from compressbench.atomic import atomic_write_bytes, atomic_write_text
from compressbench.locks import file_lock
from compressbench.results import ordered_columns

TABLE_COLUMNS = ["stage", "kind", "status", "test_acc", "params", "sparsity", "size_bytes", "compression_ratio",
                 "macs", "latency_ms_p50", "speedup", "throughput_ips", "cache_hit", "wall_s"]


def collect(root: str | Path) -> tuple[pd.DataFrame, list[dict[str, Any]], list[str]]:
    """(all rows, per-job statuses, unreadable files) under ``root``."""
    root = Path(root)
    frames, problems = [], []
    for path in sorted(root.rglob("results.csv")):
        try:
            df = pd.read_csv(path, dtype={"git_sha": str, "overrides": str, "error": str})
        except Exception as e:  # noqa: BLE001 — a half-finished job must not break the summary
            problems.append(f"{path}: {e}")
            continue
        df["run_dir"] = str(path.parent.relative_to(root)) if path.parent != root else "."
        df["_mtime"] = path.stat().st_mtime
        frames.append(df)
    rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if not rows.empty:
        rows = (rows.sort_values("_mtime").drop_duplicates(["run_id", "stage_index"], keep="last")
                .sort_values(["experiment", "run_id", "stage_index"]).drop(columns="_mtime")
                .reset_index(drop=True))
    jobs = []
    for path in sorted(root.rglob("status.json")):
        try:
            job = json.loads(path.read_text())
        except Exception as e:  # noqa: BLE001
            problems.append(f"{path}: {e}")
            continue
        job["run_dir"] = str(path.parent.relative_to(root)) if path.parent != root else "."
        jobs.append(job)
    return rows, jobs, problems


def write_report(root: str | Path) -> pd.DataFrame:
    """Write ``summary.csv``, ``summary.md`` and ``plots/*.png`` into ``root``; return the rows."""
    root = Path(root)
    with file_lock(root / ".report.lock", what="the report of this directory"):
        rows, jobs, problems = collect(root)
        columns = ordered_columns(rows.to_dict("records")) + ["run_dir"] if not rows.empty else []
        columns = [c for c in dict.fromkeys(columns) if c in rows.columns]
        atomic_write_text(root / "summary.csv", rows[columns].to_csv(index=False) if columns else "")
        atomic_write_text(root / "summary.md", summary_markdown(rows, jobs, problems))
        if not rows.empty:
            from compressbench import plots

            for name, fig in plots.all_figures(rows, root).items():
                buf = io.BytesIO()
                fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
                plots.close(fig)
                atomic_write_bytes(root / "plots" / f"{name}.png", buf.getvalue())
    return rows


def summary_markdown(rows: pd.DataFrame, jobs: Sequence[Mapping[str, Any]], problems: Sequence[str]) -> str:
    lines = ["# compressbench summary", ""]
    if not rows.empty:
        first = rows.iloc[0]
        lines += [f"- experiment: {', '.join(sorted(rows['experiment'].astype(str).unique()))}",
                  f"- model / dataset: {first['model']} / {first['dataset']}",
                  f"- machine: {first.get('machine', '')}; torch {first.get('torch_version', '')}", "",
                  "## Stages", "", markdown_table(rows, ["run_id", *TABLE_COLUMNS]), ""]
    failed = [j for j in jobs if j.get("status") != "ok"]
    if failed:
        lines += ["## Failed jobs", "", "| run dir | status | overrides | error |", "|---|---|---|---|"]
        for j in failed:
            err = str(j.get("error", "")).replace("|", "\\|").replace("\n", " ")
            lines.append(f"| {j['run_dir']} | {j.get('status')} | {j.get('overrides', '')} | {err} |")
        lines.append("")
    if problems:
        lines += ["## Unreadable files", "", *[f"- {p}" for p in problems], ""]
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e6 else f"{value:.3e}"
    return str(value)


def markdown_table(rows: pd.DataFrame, columns: Sequence[str]) -> str:
    columns = [c for c in columns if c in rows.columns]
    out = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for _, r in rows.iterrows():
        out.append("| " + " | ".join(_fmt(r[c]) for c in columns) + " |")
    return "\n".join(out)


def print_table(rows: Sequence[Mapping[str, Any]], file: Any = None) -> None:
    """The results of one run as an aligned text table."""
    df = pd.DataFrame(list(rows))
    columns = [c for c in TABLE_COLUMNS if c in df.columns and df[c].notna().any()]
    text = df[columns].to_string(index=False, formatters={c: _fmt for c in columns})
    print("\n" + text + "\n", file=file or sys.stdout, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m compressbench.report", description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path, help="a run, sweep or tree of them (the folders Hydra wrote)")
    args = parser.parse_args(argv)
    if not args.dir.is_dir():
        parser.error(f"{args.dir} is not a directory; pass the run or sweep folder (outputs/... or multirun/...)")
    rows = write_report(args.dir)
    print(f"{len(rows)} rows from {rows['run_id'].nunique() if len(rows) else 0} runs → "
          f"{args.dir / 'summary.csv'}, {args.dir / 'summary.md'}, {args.dir / 'plots'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
