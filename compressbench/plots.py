"""The figures of a report. Each takes the tidy rows (enriched by ``report.enrich``) and returns a matplotlib
Figure, or None when it has nothing to show. NaN is never plotted; failed stages are left out.

Readable without the CSV: titles name model, dataset, machine and runtime; axes carry units; points are
labelled by stage and runs by what distinguishes them; chance accuracy is drawn as a floor; latencies from
different machines or runtimes go to separate panels instead of sharing an axis.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers or in CI
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

SIZE_FLAVOURS = {
    "size_bytes": "serialized artifact",
    "gzip_bytes": "gzip of the artifact",
    "encoded_bytes": "sparse/entropy-coded encoding",
}
MAX_LEGEND = 12


def close(fig: Figure) -> None:
    plt.close(fig)


def _values(rows: pd.DataFrame, col: str) -> str:
    vals = sorted(rows[col].dropna().astype(str).unique()) if col in rows else []
    return ", ".join(vals) if vals else "?"


def _title(rows: pd.DataFrame, what: str, runtime: bool = False) -> str:
    line = f"{_values(rows, 'model')} on {_values(rows, 'dataset')} · {_values(rows, 'machine')}"
    if runtime:
        line += f" · runtime {_values(rows, 'runtime')}"
    return f"{what}\n{line}"


def _numeric(rows: pd.DataFrame, *cols: str) -> pd.DataFrame:
    out = rows[rows["status"].astype(str) == "ok"].copy() if "status" in rows else rows.copy()
    for c in cols:
        out[c] = pd.to_numeric(out[c], errors="coerce") if c in out else float("nan")
    return out.dropna(subset=list(cols))


def _chance(ax: plt.Axes, rows: pd.DataFrame) -> None:
    classes = pd.to_numeric(rows.get("num_classes", pd.Series(dtype=float)), errors="coerce").dropna()
    if len(classes):
        chance = 100.0 / float(classes.max())
        ax.axhline(chance, color="0.6", linestyle=":", linewidth=1)
        ax.annotate(f"chance {chance:.1f}%", (0.01, chance), xycoords=("axes fraction", "data"),
                    va="bottom", fontsize=8, color="0.4")


def _per_run(ax: plt.Axes, data: pd.DataFrame, x: str, y: str) -> None:
    """One line per run through its stages in chain order, each point labelled with its stage."""
    for i, (_, run) in enumerate(data.groupby("run_id", sort=False)):
        run = run.sort_values("stage_index")
        label = str(run["run_label"].iloc[0]) if "run_label" in run else str(run["run_id"].iloc[0])
        ax.plot(run[x], run[y], marker="o", linewidth=1, alpha=0.85, label=label[:48] if i < MAX_LEGEND else None)
        for _, r in run.iterrows():
            ax.annotate(str(r["stage"]), (r[x], r[y]), textcoords="offset points", xytext=(4, 4), fontsize=7)


def _pareto_line(ax: plt.Axes, data: pd.DataFrame, x: str) -> None:
    from compressbench.report import pareto_mask

    front = data[pareto_mask(data, x, "test_acc")].sort_values(x)
    if len(front) > 1:
        ax.step(front[x], front["test_acc"], where="post", color="black", linewidth=1.2, alpha=0.5,
                label="Pareto front")


def _finish(ax: plt.Axes, data: pd.DataFrame) -> None:
    ax.grid(True, alpha=0.3)
    if data["run_id"].nunique() > 1 or ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="best")


def accuracy_vs_size(rows: pd.DataFrame, flavour: str) -> Figure | None:
    data = _numeric(rows, flavour, "test_acc")
    if data.empty:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    _per_run(ax, data, flavour, "test_acc")
    _pareto_line(ax, data, flavour)
    _chance(ax, rows)
    ax.set_xscale("log")
    ax.set_xlabel(f"{flavour} — {SIZE_FLAVOURS[flavour]} (bytes, log scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(_title(rows, "Accuracy vs size"), fontsize=9)
    _finish(ax, data)
    return fig


def accuracy_vs_latency(rows: pd.DataFrame) -> Figure | None:
    """One panel per (machine, runtime, threads): milliseconds from different ones are not comparable."""
    data = _numeric(rows, "latency_ms_p50", "test_acc")
    if data.empty:
        return None
    keys = [c for c in ("machine", "device", "runtime", "threads") if c in data]
    groups = list(data.groupby(keys, dropna=False, sort=True)) if keys else [((), data)]
    fig, axes = plt.subplots(1, len(groups), figsize=(6.5 * len(groups), 4.8), squeeze=False)
    for ax, (key, group) in zip(axes[0], groups, strict=True):
        _per_run(ax, group, "latency_ms_p50", "test_acc")
        _chance(ax, rows)
        ax.set_xlabel("latency p50 at batch 1 (ms)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(" · ".join(f"{k} {v}" for k, v in zip(keys, key if isinstance(key, tuple) else (key,),
                                                               strict=True)), fontsize=8)
        _finish(ax, group)
    note = " (separate panels: different machines/runtimes/threads)" if len(groups) > 1 else ""
    fig.suptitle(_title(rows, "Accuracy vs measured latency" + note), fontsize=9)
    return fig


def speedup_vs_compression(rows: pd.DataFrame) -> Figure | None:
    data = _numeric(rows, "compression_ratio", "speedup")
    if data.empty:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 4.8))
    _per_run(ax, data, "compression_ratio", "speedup")
    ax.axhline(1.0, color="0.6", linestyle=":", linewidth=1)
    ax.set_xlabel("compression ratio (reference size_bytes / size_bytes, ×)")
    ax.set_ylabel("measured speedup at batch 1 (paired, ×)")
    ax.set_title(_title(rows, "Speedup vs compression", runtime=True), fontsize=9)
    _finish(ax, data)
    return fig


def waterfall(rows: pd.DataFrame) -> Figure | None:
    """Per run: the size after each stage (bars, log) and the test accuracy (line) — what each stage bought."""
    data = _numeric(rows, "size_bytes", "test_acc")
    runs = list(data.groupby("run_id", sort=False))[:MAX_LEGEND]
    if not runs:
        return None
    fig, axes = plt.subplots(len(runs), 1, figsize=(8, 3.0 * len(runs)), squeeze=False)
    for ax, (_, run) in zip(axes[:, 0], runs, strict=True):
        run = run.sort_values("stage_index")
        names = [str(s) for s in run["stage"]]
        best = run[["size_bytes"]].copy()
        encoded = pd.Series(False, index=run.index)
        if "encoded_bytes" in run:
            sizes = run[["size_bytes", "encoded_bytes"]].apply(pd.to_numeric, errors="coerce")
            best["size_bytes"] = sizes.min(axis=1)
            encoded = sizes["encoded_bytes"] < sizes["size_bytes"]
        # Which size each bar is: a stage that makes no encoding (a finetune) shows its dense artifact.
        colors = ["tab:green" if e else "tab:blue" for e in encoded]
        ax.bar(names, best["size_bytes"], color=colors, alpha=0.6)
        if encoded.any():
            ax.legend(handles=[Patch(color="tab:blue", alpha=0.6, label="size_bytes (artifact)"),
                               Patch(color="tab:green", alpha=0.6, label="encoded_bytes (verified encoding)")],
                      fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2, frameon=False)
        ax.set_yscale("log")
        ax.set_ylabel("smallest size (bytes)", fontsize=8)
        twin = ax.twinx()
        twin.plot(names, run["test_acc"], color="tab:red", marker="o")
        twin.set_ylabel("test acc (%)", fontsize=8, color="tab:red")
        for i, (size, acc) in enumerate(zip(best["size_bytes"], run["test_acc"], strict=True)):
            ax.annotate(f"{best['size_bytes'].iloc[0] / size:.1f}×", (i, size), ha="center", va="bottom",
                        fontsize=7)
            twin.annotate(f"{acc:.1f}", (i, acc), textcoords="offset points", xytext=(0, 5), ha="center",
                          fontsize=7, color="tab:red")
        ax.set_title(str(run["run_label"].iloc[0])[:80] if "run_label" in run else "", fontsize=8)
    fig.suptitle(_title(rows, "What each stage bought: size (× smaller than the first stage) and accuracy"),
                 fontsize=9)
    fig.tight_layout()
    return fig


def accuracy_vs_swept(rows: pd.DataFrame) -> Figure | None:
    """For sweeps over one numeric parameter: final test accuracy (and size) of each run against it."""
    if "swept" not in rows or rows["swept"].dropna().empty:
        return None
    key = str(rows["swept"].dropna().iloc[0])
    data = _numeric(rows, "swept_value", "test_acc")
    if data.empty:
        return None
    final = data.sort_values("stage_index").groupby("run_id").tail(1).sort_values("swept_value")
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for stage, group in data.groupby("stage", sort=False):
        group = group.sort_values("swept_value")
        ax.plot(group["swept_value"], group["test_acc"], marker="o", label=f"after {stage}")
    _chance(ax, rows)
    ax.set_xlabel(key)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(_title(rows, f"Accuracy vs {key} ({len(final)} runs)"), fontsize=9)
    _finish(ax, data)
    return fig


def training_curves(rows: pd.DataFrame, root: Path) -> Figure | None:
    histories = []
    for run_dir in rows["run_dir"].dropna().unique():
        for path in sorted((root / str(run_dir) / "stages").glob("*/history.csv")):
            try:
                h = pd.read_csv(path)
            except Exception:  # noqa: BLE001 — a history being written right now is skipped, not fatal
                continue
            if {"epoch", "train_loss", "val_acc"} <= set(h.columns) and len(h):
                h["curve"] = f"{run_dir}/{path.parent.name}" if run_dir != "." else path.parent.name
                histories.append(h)
    if not histories:
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for i, h in enumerate(histories):
        label = h["curve"].iloc[0][-40:] if i < MAX_LEGEND else None
        left.plot(h["epoch"], h["train_loss"], label=label)
        right.plot(h["epoch"], h["val_acc"], label=label)
    left.set(xlabel="epoch", ylabel="train loss")
    right.set(xlabel="epoch", ylabel="validation accuracy (%)")
    right.legend(fontsize=7)
    for ax in (left, right):
        ax.grid(True, alpha=0.3)
    fig.suptitle(_title(rows, "Training curves"), fontsize=9)
    return fig


def all_figures(rows: pd.DataFrame, root: Path) -> dict[str, Figure]:
    figures: dict[str, Figure | None] = {"accuracy_vs_size": accuracy_vs_size(rows, "size_bytes")}
    for flavour in ("gzip_bytes", "encoded_bytes"):
        figures[f"accuracy_vs_{flavour}"] = accuracy_vs_size(rows, flavour)
    figures.update({
        "accuracy_vs_latency": accuracy_vs_latency(rows),
        "speedup_vs_compression": speedup_vs_compression(rows),
        "waterfall": waterfall(rows),
        "accuracy_vs_swept": accuracy_vs_swept(rows),
        "training_curves": training_curves(rows, root),
    })
    return {name: fig for name, fig in figures.items() if fig is not None}
