"""Aggregate results into tables and plots: ``python -m compressbench.report DIR [--findings-dir findings]``.

DIR may be one run, a sweep, or a tree of them. The aggregator is idempotent and tolerant: every
``results.csv`` below DIR is read (unreadable ones are listed, not fatal), rows are de-duplicated on
(run_id, stage_index) keeping the newest, jobs that failed before writing a row are found through their
``status.json``, and NaN/empty values are never plotted as numbers. Each run and sweep refreshes its own
report at the end; the command also writes a curated copy per experiment into ``<findings-dir>/<experiment>/``.
"""
from __future__ import annotations

import argparse
import io
import json
import math
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from compressbench.infra.atomic import atomic_write_bytes, atomic_write_text
from compressbench.infra.locks import file_lock
from compressbench.results import ordered_columns

TABLE_COLUMNS = ["stage", "kind", "status", "test_acc", "params", "sparsity", "size_bytes", "compression_ratio",
                 "macs", "latency_ms_p50", "speedup", "throughput_ips", "cache_hit", "wall_s"]
DERIVED = ["technique", "run_label", "swept", "swept_value", "run_dir"]


def collect(root: str | Path) -> tuple[pd.DataFrame, list[dict[str, Any]], list[str]]:
    """(all rows, per-job statuses, unreadable files) under ``root``."""
    root = Path(root)
    frames, problems = [], []
    for path in sorted(root.rglob("results.csv")):
        try:
            df = pd.read_csv(path, dtype={"git_sha": str, "overrides": str, "error": str, "method": str})
        except Exception as e:  # noqa: BLE001 — a half-finished job must not break the summary
            problems.append(f"{path}: {e}")
            continue
        df["run_dir"] = str(path.parent.relative_to(root)) if path.parent != root else "."
        df["_mtime"] = path.stat().st_mtime
        frames.append(df)
    rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if not rows.empty:
        rows = (rows.sort_values("_mtime", kind="stable").drop_duplicates(["run_id", "stage_index"], keep="last")
                .sort_values(["experiment", "run_dir", "stage_index"], kind="stable").drop(columns="_mtime")
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


def _parse_overrides(text: Any) -> dict[str, str]:
    out = {}
    for token in str(text).split() if isinstance(text, str) else []:
        if "=" in token:
            key, value = token.split("=", 1)
            out[key.lstrip("+~")] = value
    return out


def enrich(rows: pd.DataFrame) -> pd.DataFrame:
    """Add ``technique`` (kind:method), ``run_label`` (what tells the runs apart) and, for one-parameter
    numeric sweeps, ``swept`` / ``swept_value``."""
    rows = rows.copy()
    methods = rows["method"] if "method" in rows else pd.Series(None, index=rows.index, dtype=object)
    runtimes = rows["runtime"] if "runtime" in rows else pd.Series(None, index=rows.index, dtype=object)

    def technique(kind: Any, method: Any, runtime: Any) -> str:
        name = f"{kind}:{method}" if isinstance(method, str) and method not in ("", "nan", "None") else str(kind)
        # int8 on FX and on ONNX Runtime are different deployments: never pooled into one technique.
        return f"{name}@{runtime}" if isinstance(runtime, str) and runtime not in ("", "eager") else name

    rows["technique"] = [technique(k, m, r) for k, m, r in zip(rows["kind"], methods, runtimes, strict=True)]
    per_run = {rid: _parse_overrides(g["overrides"].iloc[0]) if "overrides" in g else {}
               for rid, g in rows.groupby("run_id", sort=False)}
    keys = sorted({k for o in per_run.values() for k in o})
    swept = [k for k in keys if len({o.get(k) for o in per_run.values()}) > 1]
    labels = {}
    for rid, group in rows.groupby("run_id", sort=False):
        o = per_run[rid]
        if swept:
            labels[rid] = ", ".join(_short(k, o.get(k, "default")) for k in swept)
        else:
            labels[rid] = "→".join(str(s) for s in group.sort_values("stage_index")["stage"])
    rows["run_label"] = rows["run_id"].map(labels)
    rows["swept"], rows["swept_value"] = None, float("nan")
    if len(swept) == 1:
        values = pd.to_numeric(rows["run_id"].map(lambda r: per_run[r].get(swept[0])), errors="coerce")
        if values.notna().all():
            rows["swept"], rows["swept_value"] = swept[0], values
    return rows


def _short(key: str, value: str) -> str:
    if key == "chain":
        return value.strip("[]").replace(",", "→")
    return f"{key}={value}"


def pareto_mask(rows: pd.DataFrame, size: str, acc: str = "test_acc") -> pd.Series:
    """True for rows no other row beats on both smaller ``size`` and higher ``acc`` (ok rows with values)."""
    ok = rows["status"].astype(str) == "ok" if "status" in rows else pd.Series(True, index=rows.index)
    s = pd.to_numeric(rows[size], errors="coerce") if size in rows else pd.Series(float("nan"), index=rows.index)
    a = pd.to_numeric(rows[acc], errors="coerce")
    valid = ok & s.notna() & a.notna()
    mask = pd.Series(False, index=rows.index)
    for i in rows.index[valid]:
        dominated = valid & (s <= s[i]) & (a >= a[i]) & ((s < s[i]) | (a > a[i]))
        mask[i] = not dominated.any()
    return mask


def write_report(root: str | Path, out: str | Path | None = None, rows: pd.DataFrame | None = None,
                 experiment: str | None = None) -> pd.DataFrame:
    """Write ``summary.csv`` (or ``results.csv`` into a findings folder), ``summary.md`` and ``plots/*.png``
    into ``out`` (default ``root``) from the runs under ``root``; return the rows."""
    root = Path(root)
    out = Path(out) if out is not None else root
    with file_lock(out / ".report.lock", what=f"the report in {out}"):
        collected, jobs, problems = collect(root)
        rows = collected if rows is None else rows
        if experiment is not None:  # a findings folder lists its own experiment's jobs only
            jobs = [j for j in jobs if j.get("experiment") in (None, experiment)]
        if not rows.empty:
            rows = enrich(rows)
        columns = [c for c in dict.fromkeys(ordered_columns(rows.to_dict("records")) + DERIVED)
                   if c in rows.columns] if not rows.empty else []
        table = "summary.csv" if out == root else "results.csv"
        atomic_write_text(out / table, rows[columns].to_csv(index=False) if columns else "")
        atomic_write_text(out / "summary.md", summary_markdown(rows, jobs, problems, root))
        if not rows.empty:
            from compressbench import plots

            for name, fig in plots.all_figures(rows, root).items():
                buf = io.BytesIO()
                fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
                plots.close(fig)
                atomic_write_bytes(out / "plots" / f"{name}.png", buf.getvalue())
    return rows


def write_findings(root: str | Path, findings_dir: str | Path) -> list[Path]:
    """One curated folder per experiment found under ``root``: ``<findings_dir>/<experiment>/``."""
    rows, _, _ = collect(root)
    written = []
    for experiment, group in (rows.groupby("experiment", sort=True) if not rows.empty else []):
        target = Path(findings_dir) / str(experiment)
        write_report(root, target, rows=group, experiment=str(experiment))
        written.append(target)
    return written


def findings_dir_of(root: Path) -> Path:
    """``paths.findings_dir`` from the resolved config a run saved under ``root`` (relative paths: to cwd)."""
    from omegaconf import OmegaConf

    for path in sorted(root.rglob("config.yaml")):
        try:
            value = OmegaConf.select(OmegaConf.load(path), "paths.findings_dir")
        except Exception:  # noqa: BLE001 — Hydra's own .hydra/config.yaml may hold unresolved interpolations
            continue
        if value:
            return Path(str(value))
    return Path("findings")


def summary_markdown(rows: pd.DataFrame, jobs: Sequence[Mapping[str, Any]], problems: Sequence[str],
                     root: Path) -> str:
    lines = ["# compressbench summary", ""]
    if not rows.empty:
        lines += [
            f"- experiment: {_join(rows, 'experiment')}",
            f"- model / dataset: {_join(rows, 'model')} / {_join(rows, 'dataset')}",
            f"- machine: {_join(rows, 'machine')}; device {_join(rows, 'device')}; torch {_join(rows, 'torch_version')}"
            f"; compressbench {_join(rows, 'git_sha')}",
            f"- runs: {rows['run_id'].nunique()} (started {_join(rows, 'started')}); report made "
            f"{time.strftime('%Y-%m-%d %H:%M')} by `python -m compressbench.report {root}`",
            "- each run's command: `python -m compressbench <overrides>` with the overrides in the tables "
            "(`-m` for a sweep)", "",
            "## Stages", "", markdown_table(rows, ["run_label", *TABLE_COLUMNS]), "",
            "## Per technique", "", technique_table(rows), "",
            "## Pareto-optimal (test accuracy vs size_bytes)", "",
            markdown_table(rows[pareto_mask(rows, "size_bytes")].sort_values("size_bytes"),
                           ["run_label", "stage", "technique", "test_acc", "size_bytes", "compression_ratio",
                            "speedup", "runtime"]), ""]
        if "encoded_bytes" in rows and pd.to_numeric(rows["encoded_bytes"], errors="coerce").notna().any():
            lines += ["## Pareto-optimal (test accuracy vs encoded_bytes)", "",
                      markdown_table(rows[pareto_mask(rows, "encoded_bytes")].sort_values("encoded_bytes"),
                                     ["run_label", "stage", "technique", "test_acc", "encoded_bytes"]), ""]
    failed = [j for j in jobs if j.get("status") != "ok"]
    if failed:
        lines += ["## Failed jobs", "", "| run dir | status | overrides | error |", "|---|---|---|---|"]
        lines += [f"| {j['run_dir']} | {j.get('status')} | {j.get('overrides', '')} | {_cell(j.get('error', ''))} |"
                  for j in failed]
        lines.append("")
    unsupported = rows[rows["status"].astype(str) == "unsupported"] if not rows.empty else rows
    if not unsupported.empty:  # findings about a model, not crashes: those jobs succeeded
        lines += ["## Unsupported stages", "", "| run dir | stage | overrides | why |", "|---|---|---|---|"]
        lines += [f"| {r['run_dir']} | {r['stage']} | {r.get('overrides', '')} | {_cell(r.get('error', ''))} |"
                  for _, r in unsupported.iterrows()]
        lines.append("")
    if problems:
        lines += ["## Unreadable files", "", *[f"- {p}" for p in problems], ""]
    return "\n".join(lines)


def technique_table(rows: pd.DataFrame) -> str:
    ok = rows[rows["status"].astype(str) == "ok"]
    if ok.empty:
        return "(no successful stages)"
    num = ok.assign(**{c: pd.to_numeric(ok[c], errors="coerce") for c in
                       ("test_acc", "size_bytes", "compression_ratio", "speedup") if c in ok})
    agg = num.groupby("technique", sort=False).agg(
        rows=("test_acc", "size"), best_test_acc=("test_acc", "max"), smallest_size_bytes=("size_bytes", "min"),
        max_compression_ratio=("compression_ratio", "max"),
        median_speedup=("speedup", "median") if "speedup" in num else ("test_acc", "size"))
    return markdown_table(agg.reset_index(), list(agg.reset_index().columns))


def _join(rows: pd.DataFrame, col: str) -> str:
    return ", ".join(sorted(rows[col].dropna().astype(str).unique())) if col in rows else ""


def _cell(value: Any) -> str:
    return str(value if value is not None else "").replace("|", "\\|").replace("\n", " ")


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e6 else f"{value:.3e}"
    return _cell(value)


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
    parser.add_argument("--findings-dir", type=Path, default=None,
                        help="where the curated per-experiment copies go (default: the runs' paths.findings_dir, "
                             "else ./findings)")
    parser.add_argument("--no-findings", action="store_true", help="only refresh the report inside DIR")
    args = parser.parse_args(argv)
    if not args.dir.is_dir():
        parser.error(f"{args.dir} is not a directory; pass the run or sweep folder (outputs/... or multirun/...)")
    rows = write_report(args.dir)
    print(f"{len(rows)} rows from {rows['run_id'].nunique() if len(rows) else 0} runs → "
          f"{args.dir / 'summary.csv'}, {args.dir / 'summary.md'}, {args.dir / 'plots'}")
    if not args.no_findings:
        for target in write_findings(args.dir, args.findings_dir or findings_dir_of(args.dir)):
            print(f"findings → {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
