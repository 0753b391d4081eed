"""Figures of stages rather than branches: what each stage bought (waterfall), training curves, raw latency
per runtime (unpaired) and one-parameter sweeps. Same inputs and look as :mod:`figures`."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from compressbench.report.figures import FLOOR_PT, _baseline, _num, numbered
from compressbench.report.style import BASELINE_COLOR, Look, layout, place_labels, title, zoom
from compressbench.report.tables import human

MAX_ROWS = 40  # waterfall rows (stages); more are listed in summary.md
MAX_CURVES = 14
MAX_PANELS = 5  # raw-latency panels side by side (one per runtime) that fit a screen's width
_STYLES = ["-", "--", ":", "-."]


def waterfall(table: pd.DataFrame, look: Look) -> Figure | None:
    """Per stage of every branch: the smallest size (bars from 0, linear) and the accuracy (95% interval) on
    one shared scale, the baseline first."""
    ok = table[(table["status"].astype(str) == "ok") & _num(table, "stored_bytes").notna()]
    base = _baseline(table)
    if ok.empty or base is None:
        return None
    stages = ok[~ok["is_baseline"].astype(bool)]
    stages = pd.concat([ok[ok["point"] == "B"].head(1), stages]).head(MAX_ROWS)
    number = {b: p for b, p in zip(table["branch"], table["point"], strict=True) if p not in ("", "B")}
    names, last_branch = [], None
    for _, r in stages.iterrows():
        tag = r["point"] or number.get(r["branch"], "·")  # its own number, else its branch's
        arrow = "  → " if r["branch"] == last_branch and r["point"] != "B" else ""
        names.append(f"{tag} {arrow}{r['stage']}"[:28])
        last_branch = r["branch"] if r["point"] != "B" else None
    n = len(stages)
    fig, (left, right), _ = layout(0, plot_h=max(1.6, 0.24 * n + 0.3), ncols=2, left=2.1, width=9.5, gap=0.4)
    ys = list(range(n))[::-1]
    encoded = stages["stored_flavour"].astype(str) == "encoded_bytes"
    colors = [look.color(t) for t in stages["credited_technique"]]
    for y, c, enc, size in zip(ys, colors, encoded, stages["stored_bytes"], strict=True):
        left.barh(y, size / 1e3, color=c, alpha=0.75, height=0.6, hatch="////" if enc else None,
                  edgecolor="white" if enc else c, linewidth=0)
    b_size = float(base["stored_bytes"])
    for y, (_, r) in zip(ys, stages.iterrows(), strict=True):
        left.text(r["stored_bytes"] / 1e3, y, f" {human(r['stored_bytes'], 'B')}  {b_size / r['stored_bytes']:.1f}×",
                  va="center", fontsize=7)
    left.set_xlim(0, float(stages["stored_bytes"].max()) / 1e3 * 1.45)
    left.xaxis.set_major_locator(MaxNLocator(nbins=5, prune="upper"))  # panel edges carry no tick labels
    right.xaxis.set_major_locator(MaxNLocator(nbins=6, prune="lower"))
    left.set_yticks(ys, names, fontsize=7)
    left.set_ylim(-0.7, n - 0.3)
    left.set_xlabel("smallest size (kB from 0, × smaller than B; hatched: encoded_bytes file)", fontsize=8)
    b_acc = float(base["test_acc"])
    lo, hi = zoom(list(_num(stages, "acc_lo").fillna(stages["test_acc"])),
                  list(_num(stages, "acc_hi").fillna(stages["test_acc"])), b_acc, b_acc - FLOOR_PT, ceiling=100)
    right.axvline(b_acc, color=BASELINE_COLOR, linewidth=0.9)
    for y, c, (_, r) in zip(ys, colors, stages.iterrows(), strict=True):
        acc = r["test_acc"]
        if acc < lo:
            right.plot(lo, y, marker="<", color=c, clip_on=False, linestyle="")
            right.text(lo, y + 0.32, f" {acc:.1f}%" + (" (near chance)" if r["near_chance"] else ""), fontsize=7,
                       color=c, va="center")
            continue
        err = [[acc - r["acc_lo"]], [r["acc_hi"] - acc]] if not math.isnan(r["acc_lo"]) else None
        right.errorbar(acc, y, xerr=err, marker="o", color=c, capsize=2, markersize=4, linestyle="",
                       mfc="white" if r["near_chance"] else c)
    right.set_xlim(lo, hi)
    right.set_ylim(-0.7, n - 0.3)
    right.set_yticks(ys, [""] * n)
    right.set_xlabel("test accuracy (%, 95% interval; line: baseline)", fontsize=8)
    for ax in (left, right):
        ax.grid(True, axis="x", alpha=0.3)
    title(fig, "What each stage bought: size and accuracy after every stage (number = branch)", look)
    return fig


def training_curves(table: pd.DataFrame, root: Path, look: Look) -> Figure | None:
    """Train loss and validation accuracy per epoch of every training stage, once per model (stage key);
    distillation objectives (KD × T²) on their own panel, never on the cross-entropy axis."""
    curves, seen = [], set()
    number = {b: p for b, p in zip(table["branch"], table["point"], strict=True) if p not in ("", "B")}
    order = {b: (0 if p == "B" else int(p)) for b, p in zip(table["branch"], table["point"], strict=True) if p}
    ordered = table.assign(_o=table["branch"].map(order).fillna(1e9)).sort_values(["_o", "stage_index"])
    for _, r in ordered.iterrows():  # a model shared by branches is drawn once, for the lowest number
        key = r.get("stage_key") if not pd.isna(r.get("stage_key")) else (r["run_dir"], r["stage_index"])
        if key in seen:
            continue
        seen.add(key)
        path = root / str(r.get("run_dir", ".")) / "stages" / f"{int(r['stage_index']):02d}_{r['stage']}" / "history.csv"
        try:
            h = pd.read_csv(path)
        except Exception:  # noqa: BLE001 — a missing or half-written history is skipped, not fatal
            continue
        if not {"epoch", "train_loss", "val_acc"} <= set(h.columns) or h.empty:
            continue
        tag = "B" if r["is_baseline"] else (r["point"] or number.get(r["branch"], "·"))
        kd = str(r["kind"]) == "distill" and "scratch" not in str(r.get("method"))  # scratch: labels only, CE
        curves.append((f"{tag} {r['stage']} ({r['kind']}, {len(h)} ep)", kd, h,
                       look.color(r["credited_technique"])))
    if not curves:
        return None
    shown, extra = curves[:MAX_CURVES], len(curves) - MAX_CURVES
    distill = any(d for _, d, _, _ in shown)
    fig, axes, _ = layout(0, plot_h=3.0, ncols=3 if distill else 2, width=10.5 if distill else 9, left=0.75,
                          gap=0.75)
    loss, kd, acc = (axes[0], axes[1], axes[2]) if distill else (axes[0], None, axes[1])
    for i, (label, is_kd, h, color) in enumerate(shown):
        style = {"color": color, "linestyle": _STYLES[i % len(_STYLES)], "marker": "o", "markersize": 3,
                 "linewidth": 1.1, "label": label}
        (kd if is_kd else loss).plot(h["epoch"], h["train_loss"], **style)
        acc.plot(h["epoch"], h["val_acc"], **style)
    loss.set(xlabel="epoch", ylabel="train loss (cross-entropy)")
    if kd is not None:
        kd.set(xlabel="epoch", ylabel="distillation objective (KD × T² + CE)")
    acc.set(xlabel="epoch", ylabel="validation accuracy (%)")
    vals = pd.concat([h["val_acc"] for *_, h, _ in shown]).dropna()
    if len(vals):
        top = float(vals.max())
        acc.set_ylim(*zoom([float(vals.min())], [top], top, top - 25, ceiling=100))  # epoch-0 outliers: clipped
    last = max(float(h["epoch"].max()) for *_, h, _ in shown)
    for ax in axes:
        ax.grid(True, alpha=0.3)
        ax.set_xlim(min(float(h["epoch"].min()) for *_, h, _ in shown) - 0.3, last + 0.3)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
    handles, names = acc.get_legend_handles_labels()
    note = [f"+{extra} more in stages/*/history.csv"] if extra > 0 else []
    acc.legend(handles, names, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False,
               title="\n".join(note) or None, title_fontsize=7)
    title(fig, "Training curves (one per trained model; number = branch, B = baseline)", look)
    return fig


def accuracy_vs_latency(table: pd.DataFrame, look: Look) -> Figure | None:
    """Raw p50 ms, one panel per (machine, runtime, threads) and labelled unpaired: milliseconds from other
    processes or runtimes never share an axis. Paired comparisons are in speedup_vs_compression."""
    pts = pd.concat([table[table["point"] == "B"].head(1), numbered(table)])
    pts = pts[_num(pts, "latency_ms_p50").notna() & _num(pts, "test_acc").notna()]
    if pts.empty:
        return None
    keys = [c for c in ("machine", "runtime", "threads") if c in pts]
    groups = list(pts.groupby(keys, dropna=False, sort=True)) if keys else [((), pts)]
    # Every runtime gets its panel up to what a screen holds; any beyond are named in the title, never dropped
    # silently. The baseline's panel first: the others are read against it.
    groups.sort(key=lambda g: not (g[1]["point"] == "B").any())
    # A key every panel shares is in the subtitle already ("timed on 1 thread(s)"): narrow panels leave it out.
    same = {k for k in keys if pts[k].nunique(dropna=False) == 1}
    dropped = [_panel_title(keys, k, same) for k, _ in groups[MAX_PANELS:]]
    groups = groups[:MAX_PANELS]
    ncols = len(groups)
    fig, axes, _ = layout(0, plot_h=3.0, ncols=ncols, width=min(12, 3.4 * ncols + 1.0), left=0.75, gap=0.35)
    base_acc = float(pts["test_acc"].iloc[0])
    shown = pd.concat([g for _, g in groups])
    lo, hi = zoom(list(_num(shown, "acc_lo").fillna(shown["test_acc"])),
                  list(_num(shown, "acc_hi").fillna(shown["test_acc"])), base_acc, base_acc - FLOOR_PT, ceiling=100)
    for n, (ax, (key, group)) in enumerate(zip(axes, groups, strict=True)):
        labels = []
        for _, r in group.iterrows():
            color, y = look.color(r["credited_technique"]), max(float(r["test_acc"]), lo)
            ax.plot(r["latency_ms_p50"], y, marker="v" if r["test_acc"] < lo else "o", color=color, linestyle="",
                    clip_on=False)
            labels.append((r["latency_ms_p50"], y, str(r["point"]), color))
        ax.set_xlim(0, float(group["latency_ms_p50"].max()) * 1.3)  # from 0: a 4% difference looks like 4%
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4, prune="lower"))  # no '0' label in the corner
        ax.set_ylim(lo, hi)
        ax.set_xlabel("latency p50, batch 1 (ms, unpaired)", fontsize=8)
        if n == 0:
            ax.set_ylabel("test accuracy (%)", fontsize=8)
        else:
            ax.tick_params(labelleft=False)  # one accuracy scale for all panels
        ax.set_title(_panel_title(keys, key, same), fontsize=8 if ncols <= 3 else 7)
        ax.grid(True, alpha=0.3)
        place_labels(ax, labels)
    more = f"; not shown: {', '.join(dropped)}" if dropped else ""
    title(fig, f"Raw latency per runtime: UNPAIRED (timed in different processes; compare speedups instead{more})",
          look)
    return fig


def _panel_title(keys: list[str], key: object, same: set[str]) -> str:
    key = key if isinstance(key, tuple) else (key,)
    return " · ".join(_panel(k, v) for k, v in zip(keys, key, strict=True) if k != "machine" and k not in same)


def _panel(key: str, value: object) -> str:
    if key == "threads" and not pd.isna(value):
        return f"{int(float(value))} thread(s)"
    return f"runtime {value}" if key == "runtime" else str(value)


def accuracy_vs_swept(table: pd.DataFrame, look: Look) -> Figure | None:
    """For sweeps over one numeric parameter: accuracy (95% interval) after each stage against it."""
    if "swept" not in table or table["swept"].dropna().empty:
        return None
    key = str(table["swept"].dropna().iloc[0])
    data = table[(table["status"].astype(str) == "ok") & _num(table, "swept_value").notna()]
    if data.empty:
        return None
    fig, (ax,), _ = layout(0, plot_h=3.4, width=8.0)
    for stage, group in data.groupby("stage", sort=False):
        group = group.sort_values("swept_value")
        err = [group["test_acc"] - group["acc_lo"], group["acc_hi"] - group["test_acc"]] \
            if group["acc_lo"].notna().all() else None
        ax.errorbar(group["swept_value"], group["test_acc"], yerr=err, marker="o", capsize=2,
                    label=f"after {stage}", color=look.color(group["credited_technique"].iloc[0]))
    ax.set_ylim(*zoom(list(data["acc_lo"].fillna(data["test_acc"])), list(data["acc_hi"].fillna(data["test_acc"])),
                      float(data["test_acc"].max()), float(data["test_acc"].max()) - 30, ceiling=100))
    ax.set_xlabel(key)
    ax.set_ylabel("test accuracy (%, 95% interval)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    title(fig, f"Accuracy vs {key} ({data['branch'].nunique()} branches)", look)
    return fig

