"""Recovery curves: how much retraining each technique needs to win its accuracy back.

A *recovery* is a training stage that follows a compression stage in a branch (a finetune after pruning, a
refit after low-rank, a retrain after clustering) or a distillation (the student's whole training). Its
validation accuracy per epoch (``stages/NN_<stage>/history.csv``) is drawn against epochs and against cumulative
training seconds, starting where the compression left it (the validation accuracy of the row before it; a
student starts from scratch, so has no such point). The baseline's validation accuracy is drawn with its 95%
interval. The table says, per recovery, when it first came within ``WITHIN_PT`` of the baseline — the honest
answer when a budget stops short of convergence: "back within 1 pt after N epochs" or "not within 1 pt in N".
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

import compressbench.report.stats as stats
from compressbench.report.style import BASELINE_COLOR, Look, layout, title
from compressbench.report.tables import pct

WITHIN_PT = 1.0  # "recovered": validation accuracy within this many points of the baseline's
MARKS = (1, 2, 5, 10, 20, 40, 80)  # epochs reported in the table (those a curve reaches)
MAX_CURVES = 12
_STYLES = ["-", "--", ":", "-."]


@dataclass
class Recovery:
    """One recovery: per-epoch validation accuracy and training seconds, where it started and ended."""

    label: str
    technique: str
    start_acc: float | None  # val acc right after compression (None: a student trained from scratch)
    epochs: list[int]
    val_acc: list[float]
    seconds: list[float]  # cumulative training seconds at the end of each epoch
    test_acc: float  # of the model the stage kept (test split, at the end)


def history_path(root: Path, row: Mapping[str, Any]) -> Path:
    """Where a stage row's per-epoch history lives in its run folder."""
    return root / str(row.get("run_dir", ".")) / "stages" / f"{int(row['stage_index']):02d}_{row['stage']}" / "history.csv"


def _val_images(root: Path, row: Mapping[str, Any]) -> int | None:
    try:
        n = json.loads((root / str(row.get("run_dir", ".")) / "split.json").read_text())["sizes"]["val"]
        return int(n) if int(n) > 0 else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def recoveries(table: pd.DataFrame, root: Path) -> list[Recovery]:
    """Every recovery in the stage ``table`` whose history is under ``root``, once per trained model."""
    out, seen = [], set()
    ok = table[table["status"].astype(str) == "ok"]
    for _, branch in ok.groupby("branch", sort=False):
        stages = branch.sort_values("stage_index").to_dict("records")
        for before, row in zip(stages, stages[1:], strict=False):
            kind = str(row["kind"])
            if row.get("is_baseline") or kind not in ("train", "distill"):
                continue
            key = row.get("stage_key") if not pd.isna(row.get("stage_key")) else (row["branch"], row["stage"])
            if key in seen:
                continue
            try:
                h = pd.read_csv(history_path(root, row))
            except Exception:  # noqa: BLE001 — a missing or half-written history is skipped, not fatal
                continue
            if not {"epoch", "val_acc"} <= set(h.columns) or h.empty:
                continue
            seen.add(key)
            student = kind == "distill"
            start = None if student else pd.to_numeric(before.get("val_acc"), errors="coerce")
            seconds = pd.to_numeric(h.get("seconds", pd.Series(math.nan, index=h.index)), errors="coerce")
            method = str(row.get("method") or "")
            technique = f"distill:{method}" if student else str(row.get("credited_technique"))
            out.append(Recovery(
                label=f"{row.get('point') or '·'} {row.get('chain_to', row['stage'])}", technique=technique,
                start_acc=None if start is None or math.isnan(start) else float(start),
                epochs=[int(e) for e in h["epoch"]], val_acc=[float(v) for v in h["val_acc"]],
                seconds=[float(s) for s in seconds.fillna(0).cumsum()], test_acc=float(row["test_acc"])))
    return out


def baseline_val(table: pd.DataFrame, root: Path) -> tuple[float, float, float] | None:
    """The baseline's validation accuracy and its 95% (Wilson) interval, or None without a baseline."""
    base = table[table["is_baseline"].astype(bool) & (table["status"].astype(str) == "ok")]
    if base.empty or pd.isna(pd.to_numeric(base.iloc[0].get("val_acc"), errors="coerce")):
        return None
    row = base.iloc[0].to_dict()
    acc = float(row["val_acc"])
    lo, hi = stats.wilson(acc, _val_images(root, row))
    return acc, lo, hi


def first_within(rec: Recovery, target: float) -> tuple[int | None, float | None]:
    """The first epoch (and cumulative seconds) at which validation accuracy reached ``target``."""
    for epoch, acc, sec in zip(rec.epochs, rec.val_acc, rec.seconds, strict=True):
        if acc >= target:
            return epoch, sec
    return None, None


def recovery_table(recs: list[Recovery], base: tuple[float, float, float] | None) -> pd.DataFrame:
    """One row per recovery: start, a few epochs, end, final test accuracy, and when it came within 1 pt."""
    rows = []
    marks = [m for m in MARKS if any(m in r.epochs for r in recs)]
    for r in recs:
        acc = dict(zip(r.epochs, r.val_acc, strict=True))
        row: dict[str, Any] = {"recovery": r.label, "technique": r.technique, "start_val_acc": r.start_acc,
                               **{f"val_acc_ep{m}": acc.get(m) for m in marks},
                               "epochs": max(r.epochs), "final_val_acc": r.val_acc[-1], "test_acc": r.test_acc,
                               "train_s": r.seconds[-1] if r.seconds else None}
        if base is not None:
            epoch, sec = first_within(r, base[0] - WITHIN_PT)
            row.update(epochs_to_within_1pt=epoch, seconds_to_within_1pt=sec)
        rows.append(row)
    return pd.DataFrame(rows)


def figure(recs: list[Recovery], base: tuple[float, float, float] | None, look: Look) -> Figure | None:
    """Validation accuracy against finetune epochs (left) and training seconds (right), one line per recovery,
    the baseline as a line with its 95% band."""
    if not recs:
        return None
    shown = recs[:MAX_CURVES]
    fig, (by_epoch, by_time), _ = layout(0, plot_h=3.2, ncols=2, width=10.5, left=0.75, gap=0.6)
    for i, r in enumerate(shown):
        style = {"color": look.color(r.technique), "linestyle": _STYLES[i % len(_STYLES)], "marker": "o",
                 "markersize": 2.5, "linewidth": 1.1}
        x0 = [0] if r.start_acc is not None else []
        y0 = [r.start_acc] if r.start_acc is not None else []
        by_epoch.plot(x0 + r.epochs, y0 + r.val_acc, label=r.label, **style)
        by_time.plot([0.0] * len(x0) + r.seconds, y0 + r.val_acc, **style)
    values = [v for r in shown for v in r.val_acc]
    for ax in (by_epoch, by_time):
        if base is not None:
            ax.axhline(base[0], color=BASELINE_COLOR, linewidth=0.9)
            if not math.isnan(base[1]):
                ax.axhspan(base[1], base[2], color=BASELINE_COLOR, alpha=0.12, linewidth=0)
        ax.grid(True, alpha=0.3)
    top = max(values + ([base[2]] if base is not None and not math.isnan(base[2]) else []))
    bottom = min(values)
    by_epoch.set_ylim(max(bottom, top - 30) - 1, min(top + 2, 100.5))  # a post-pruning 10% start: clipped
    by_time.set_ylim(*by_epoch.get_ylim())
    by_epoch.xaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
    by_epoch.set(xlabel="retraining epochs (0 = right after compression)", ylabel="validation accuracy (%)")
    by_time.set(xlabel="retraining seconds (training steps only)")
    by_time.legend(*by_epoch.get_legend_handles_labels(), fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0),
                   frameon=False, title="line: baseline val acc, band: 95%"
                   + (f"\n+{len(recs) - MAX_CURVES} more in summary.md" if len(recs) > MAX_CURVES else ""),
                   title_fontsize=7)
    title(fig, "Recovery: accuracy against retraining (number = branch)", look)
    return fig


def _seconds(value: float) -> str:
    """20 s as ``20``, a sub-second training as ``0.4`` (not ``0``)."""
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def section(table: pd.DataFrame, root: Path) -> list[str]:
    """summary.md's recovery section: one sentence and one table row per recovery (empty without any)."""
    recs = recoveries(table, root) if not table.empty else []
    if not recs:
        return []
    base = baseline_val(table, root)
    df = recovery_table(recs, base)
    lines = ["## Recovery: how much retraining each technique needs", ""]
    if base is not None:
        lines += [f"Validation accuracy per retraining epoch against the baseline's {pct(base[0], 2)}% "
                  f"(95% [{pct(base[1], 2)}, {pct(base[2], 2)}]); *within {WITHIN_PT:g} pt* = the first epoch "
                  f"at {pct(base[0] - WITHIN_PT, 2)}% or more. plots/recovery.png draws the curves.", ""]
        for _, r in df.iterrows():
            epoch = r.get("epochs_to_within_1pt")
            when = (f"back within {WITHIN_PT:g} pt of the baseline after {int(epoch)} epoch(s) "
                    f"({_seconds(r['seconds_to_within_1pt'])} s of training)" if pd.notna(epoch)
                    else f"not within {WITHIN_PT:g} pt in {int(r['epochs'])} epoch(s)")
            start = f"from {pct(r['start_val_acc'], 2)}% " if pd.notna(r["start_val_acc"]) else "from scratch "
            lines.append(f"- {r['recovery']}: {start}to {pct(r['final_val_acc'], 2)}% val "
                         f"({pct(r['test_acc'], 2)}% test) — {when}.")
        lines.append("")
    marks = [c for c in df.columns if c.startswith("val_acc_ep")]
    header = ["recovery", "start"] + [f"ep {c[len('val_acc_ep'):]}" for c in marks] + ["end (epochs)", "test",
                                                                                       "within 1 pt at"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, r in df.iterrows():
        within = r.get("epochs_to_within_1pt")
        cells = [str(r["recovery"]), pct(r["start_val_acc"], 2)] + [pct(r[c], 2) for c in marks] + [
            f"{pct(r['final_val_acc'], 2)} ({int(r['epochs'])})", pct(r["test_acc"], 2),
            f"ep {int(within)}" if pd.notna(within) else "—"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]
