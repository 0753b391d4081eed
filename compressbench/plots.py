"""The figures of a report. Each takes the tidy rows and returns a matplotlib Figure; NaN is never plotted."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers or in CI
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def close(fig: Figure) -> None:
    plt.close(fig)


def _title(rows: pd.DataFrame, what: str) -> str:
    def one(col: str) -> str:
        vals = sorted(rows[col].dropna().astype(str).unique()) if col in rows else []
        return ", ".join(vals) if vals else "?"

    return f"{what}\n{one('model')} on {one('dataset')} · {one('machine')}"


def _numeric(rows: pd.DataFrame, *cols: str) -> pd.DataFrame:
    out = rows.copy()
    for c in cols:
        out[c] = pd.to_numeric(out[c], errors="coerce") if c in out else float("nan")
    return out.dropna(subset=list(cols))


def _chance(ax: plt.Axes, rows: pd.DataFrame) -> None:
    if "num_classes" in rows and rows["num_classes"].notna().any():
        chance = 100.0 / float(pd.to_numeric(rows["num_classes"], errors="coerce").max())
        ax.axhline(chance, color="0.6", linestyle=":", linewidth=1)
        ax.annotate(f"chance {chance:.1f}%", (0.01, chance), xycoords=("axes fraction", "data"),
                    va="bottom", fontsize=8, color="0.4")


def _per_run(ax: plt.Axes, data: pd.DataFrame, x: str, y: str) -> None:
    """One line per run through its stages in chain order, each point labelled with its stage."""
    for run_id, run in data.groupby("run_id", sort=False):
        run = run.sort_values("stage_index")
        label = str(run["overrides"].iloc[0]) if "overrides" in run and str(run["overrides"].iloc[0]) not in (
            "", "nan") else str(run_id)
        ax.plot(run[x], run[y], marker="o", linewidth=1, alpha=0.85, label=label[:40])
        for _, r in run.iterrows():
            ax.annotate(str(r["stage"]), (r[x], r[y]), textcoords="offset points", xytext=(4, 4), fontsize=7)


def accuracy_vs(rows: pd.DataFrame, x: str, xlabel: str, log: bool) -> Figure | None:
    data = _numeric(rows, x, "test_acc")
    if data.empty:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    _per_run(ax, data, x, "test_acc")
    _chance(ax, rows)
    if log:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy (%)")
    runtimes = sorted(data["runtime"].dropna().astype(str).unique()) if "runtime" in data else []
    threads = sorted(data["threads"].dropna().astype(int).astype(str).unique()) if "threads" in data else []
    extra = f" · runtime {', '.join(runtimes)}" if runtimes else ""
    extra += f" · {'/'.join(threads)} thread(s)" if threads and x.startswith("latency") else ""
    ax.set_title(_title(rows, f"Accuracy vs {xlabel}") + extra, fontsize=9)
    if data["run_id"].nunique() > 1:
        ax.legend(fontsize=7, loc="best")
    ax.grid(True, alpha=0.3)
    return fig


def speedup_vs_compression(rows: pd.DataFrame) -> Figure | None:
    data = _numeric(rows, "compression_ratio", "speedup")
    if data.empty:
        return None
    fig, ax = plt.subplots(figsize=(6, 4.5))
    _per_run(ax, data, "compression_ratio", "speedup")
    ax.axhline(1.0, color="0.6", linestyle=":", linewidth=1)
    ax.set_xlabel("compression ratio (reference size_bytes / size_bytes)")
    ax.set_ylabel("measured speedup at batch 1 (paired, ×)")
    ax.set_title(_title(rows, "Speedup vs compression"), fontsize=9)
    ax.grid(True, alpha=0.3)
    return fig


def training_curves(rows: pd.DataFrame, root: Path) -> Figure | None:
    histories = []
    for run_dir in rows["run_dir"].dropna().unique():
        for path in sorted((root / str(run_dir) / "stages").glob("*/history.csv")):
            try:
                h = pd.read_csv(path)
            except Exception:  # noqa: BLE001
                continue
            h["curve"] = f"{run_dir}/{path.parent.name}" if run_dir != "." else path.parent.name
            histories.append(h)
    if not histories:
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for h in histories:
        left.plot(h["epoch"], h["train_loss"], label=h["curve"].iloc[0][-40:])
        right.plot(h["epoch"], h["val_acc"], label=h["curve"].iloc[0][-40:])
    left.set_xlabel("epoch")
    left.set_ylabel("train loss")
    right.set_xlabel("epoch")
    right.set_ylabel("val accuracy (%)")
    right.legend(fontsize=7)
    for ax in (left, right):
        ax.grid(True, alpha=0.3)
    fig.suptitle(_title(rows, "Training curves"), fontsize=9)
    return fig


def all_figures(rows: pd.DataFrame, root: Path) -> dict[str, Figure]:
    figures = {
        "accuracy_vs_size": accuracy_vs(rows, "size_bytes", "size (bytes, serialized artifact)", log=True),
        "accuracy_vs_latency": accuracy_vs(rows, "latency_ms_p50", "latency p50 at batch 1 (ms)", log=False),
        "speedup_vs_compression": speedup_vs_compression(rows),
        "training_curves": training_curves(rows, root),
    }
    return {name: fig for name, fig in figures.items() if fig is not None}
