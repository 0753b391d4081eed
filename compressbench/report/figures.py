"""The deployer's figures: one numbered point per branch, every branch against the same baseline.

(a) ``speedup_vs_compression``: paired speedup (vs the fastest fp32 route where it was timed, else the row's
own runtime — said on the point) against compression ratio, IQR bars, the 1× line.
(b) ``accuracy_change_vs_speedup``: accuracy change (points, 95% interval) against that speedup.
(c) ``accuracy_vs_<size flavour>``: accuracy (95% interval) against each size, with the Pareto front.
Each takes the numbered stage table (``points.number_points``) and a :class:`Look`; None when nothing to show.
"""
from __future__ import annotations

import math

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

import compressbench.report.stats as stats
from compressbench.report.style import (
    BASELINE_COLOR,
    Look,
    bytes_axis,
    key_table,
    layout,
    log_axis,
    marker_for,
    place_labels,
    title,
    zoom,
)
from compressbench.report.tables import human, interval, times

SIZE_FLAVOURS = {"size_bytes": "serialized artifact", "gzip_bytes": "gzip of the artifact",
                 "encoded_bytes": "verified sparse/entropy-coded file"}
FLOOR_PT = 8.0  # accuracy axes show at most this far below the baseline; lower points sit on the edge, marked


def _num(df: pd.DataFrame, col: str) -> pd.Series:
    return pd.to_numeric(df[col], errors="coerce") if col in df else pd.Series(math.nan, index=df.index)


def numbered(table: pd.DataFrame) -> pd.DataFrame:
    """The numbered points that are not the baseline, ok only."""
    pts = table[(table["point"] != "") & (table["point"] != "B") & (table["status"].astype(str) == "ok")]
    return pts.sort_values("point", key=lambda s: s.astype(int))


def _baseline(table: pd.DataFrame) -> pd.Series | None:
    base = table[table["point"] == "B"]
    return base.iloc[0] if len(base) else None


def _label(r: pd.Series, mixed: bool) -> str:
    """The point's number; with mixed speedup baselines, also what its speedup is against."""
    base = str(r.get("speedup_baseline") or "")
    return f"{r['point']} vs {base}" if mixed and base and not base.startswith("best") else str(r["point"])


def baseline_speedup(table: pd.DataFrame, against: str) -> float:
    """Where the baseline B (eager fp32) sits on a speedup axis against ``against`` (a ``speedup_baseline``
    label): 1 against eager fp32, itself; against another fp32 route, that route's time over eager's: the
    measured ``baseline_eager_vs_<route>_fp32`` of the rows, else from rows of artifacts on their own runtime
    timed against both (``speedup_vs_<route>_fp32 / speedup_vs_eager_fp32``: the row's own time cancels);
    their median; NaN where neither exists."""
    route = against[len("best fp32 ("):-1] if against.startswith("best fp32 (") else against.split(" ")[0]
    if route == "eager":
        return 1.0
    ok = table[table["status"].astype(str) == "ok"] if "status" in table else table
    measured = _num(ok, f"baseline_eager_vs_{route}_fp32")  # B on eager against B on the route, interleaved
    if (measured > 0).any():
        return float(measured[measured > 0].median())
    # Rows without it: an artifact on its own runtime (int8, ...) has one time in both speedups, so their ratio
    # cancels it; an fp32 model runs on every route, so its two speedups have different numerators: left out.
    own = ok[ok["runtime"].astype(str) != "eager"] if "runtime" in ok else ok
    on_route, on_eager = _num(own, f"speedup_vs_{route}_fp32"), _num(own, "speedup_vs_eager_fp32")
    ratio = (on_route / on_eager)[(on_route > 0) & (on_eager > 0)]
    return float(ratio.median()) if len(ratio) else math.nan


def _baseline_stars(table: pd.DataFrame, pts: pd.DataFrame) -> tuple[list[tuple[float, str, str]], list[str]]:
    """B's place on each speedup axis the points use: ([(speedup, label on the plot, against)], the axes B
    cannot be placed on). B is never drawn at 1× on an axis where it is not 1×."""
    axes = list(dict.fromkeys(str(b) for b in pts["speedup_baseline"] if b))
    stars, unplaced = [], []
    for against in axes:
        value = baseline_speedup(table, against)
        if math.isnan(value):
            unplaced.append(against)
        else:
            stars.append((value, "B" if len(axes) == 1 else f"B vs {against}", against))
    return stars, unplaced


def _unplaced_key(unplaced: list[str], width: int) -> list[list[str]]:
    """Key-table rows for the axes B could not be placed on: said, not drawn at a made-up 1×."""
    return [["B", f"not drawn vs {a}: no row was timed against both it and eager fp32", *[""] * (width - 2)]
            for a in unplaced]


def _legend(ax, baselines: list[str]) -> None:
    handles = [Line2D([], [], linestyle="", marker=marker_for(b), color="0.3", label=f"speedup vs {b}")
               for b in dict.fromkeys(baselines)]
    handles.append(Line2D([], [], linestyle="", marker="*", markersize=10, color=BASELINE_COLOR,
                          label="B baseline"))
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)


def speedup_vs_compression(table: pd.DataFrame, look: Look) -> Figure | None:
    pts = numbered(table)
    pts = pts[_num(pts, "speedup_best").notna() & _num(pts, "compression_ratio").notna()]
    if pts.empty:
        return None
    mixed = pts["speedup_baseline"].nunique() > 1
    no_iqr = pts[_num(pts, "speedup_best_iqr").isna()]
    rows = [[r["point"], r["chain_to"][:64], times(r["compression_ratio"]), times(r["speedup_best"]),
             "" if math.isnan(_num(pts, "speedup_best_iqr")[i]) else f"{r['speedup_best_iqr']:.2f}",
             r["speedup_baseline"]] for i, r in pts.iterrows()]
    stars, unplaced = _baseline_stars(table, pts)
    rows += [["B", "baseline (eager fp32)", "1.00×", times(v), "", a] for v, _, a in stars]
    rows += _unplaced_key(unplaced, 6)
    fig, (ax,), key = layout(len(rows) + 1, width=8.2)
    for i, r in pts.iterrows():
        iqr = _num(pts, "speedup_best_iqr")[i]
        ax.errorbar(r["compression_ratio"], r["speedup_best"], yerr=None if math.isnan(iqr) else iqr / 2,
                    marker=marker_for(r["speedup_baseline"]), color=look.color(r["credited_technique"]),
                    markersize=7, capsize=3, linestyle="")
    for value, _, _ in stars:
        ax.plot([1.0], [value], marker="*", markersize=12, color=BASELINE_COLOR, linestyle="")
    ax.axhline(1.0, color="0.5", linestyle="--", linewidth=0.8)
    log_axis(ax, "y", list(pts["speedup_best"] - pts["speedup_best_iqr"].fillna(0) / 2)
             + list(pts["speedup_best"] + pts["speedup_best_iqr"].fillna(0) / 2) + [v for v, _, _ in stars])
    log_axis(ax, "x", list(pts["compression_ratio"]), min_factor=1.5)
    ax.set_xlabel("compression ratio (baseline size_bytes / size_bytes, ×)")
    ax.set_ylabel("speedup at batch 1 (paired, ×)")
    ax.grid(True, alpha=0.3)
    _legend(ax, list(pts["speedup_baseline"]))
    title(fig, "Measured speedup vs compression (one point per branch; 1× = as fast as the fp32 reference it "
               "names)", look)
    place_labels(ax, [(r["compression_ratio"], r["speedup_best"], _label(r, mixed),
                       look.color(r["credited_technique"])) for _, r in pts.iterrows()]
                 + [(1.0, value, text, BASELINE_COLOR) for value, text, _ in stars])
    note = "bars: IQR of the per-round ratios" + (f"; none recorded for {', '.join(no_iqr['point'])}"
                                                  if len(no_iqr) else "")
    key_table(key, ["#", "chain", "compression", "speedup", "IQR", "speedup vs"], rows + [["", note, "", "", "", ""]])
    fig.compressbench_points = [{"point": r["point"], "baseline": r["speedup_baseline"]} for _, r in pts.iterrows()]
    return fig


def accuracy_change_vs_speedup(table: pd.DataFrame, look: Look) -> Figure | None:
    pts = numbered(table)
    pts = pts[_num(pts, "speedup_best").notna() & _num(pts, "delta_acc").notna()]
    base = _baseline(table)
    if pts.empty or base is None:
        return None
    mixed = pts["speedup_baseline"].nunique() > 1
    lo, hi = zoom(list(_num(pts, "delta_lo").fillna(pts["delta_acc"])) + [0.0],
                  list(_num(pts, "delta_hi").fillna(pts["delta_acc"])), 0.0, -FLOOR_PT)
    rows = [[r["point"], r["chain_to"][:64], interval(r["delta_acc"], r["delta_lo"], r["delta_hi"], signed=True),
             _noise(r), times(r["speedup_best"]), r["speedup_baseline"]] for _, r in pts.iterrows()]
    stars, unplaced = _baseline_stars(table, pts)
    rows += [["B", "baseline (eager fp32)", "0", "", times(v), a] for v, _, a in stars]
    rows += _unplaced_key(unplaced, 6)
    fig, (ax,), key = layout(len(rows) + 1, width=8.2)
    labels = []
    for _, r in pts.iterrows():
        color = look.color(r["credited_technique"])
        y, below = r["delta_acc"], r["delta_acc"] < lo
        if below:  # far below the decision band: on the edge, its value in the label
            ax.plot(r["speedup_best"], lo, marker="v", color=color, markersize=8, clip_on=False, linestyle="")
            labels.append((r["speedup_best"], lo, f"{_label(r, mixed)} ({y:+.1f} pt)", color))
            continue
        err = [[y - r["delta_lo"]], [r["delta_hi"] - y]] if not math.isnan(r["delta_lo"]) else None
        ax.errorbar(r["speedup_best"], y, yerr=err, marker=marker_for(r["speedup_baseline"]), color=color,
                    markersize=7, capsize=3, linestyle="", mfc="white" if r["near_chance"] else color)
        labels.append((r["speedup_best"], y, _label(r, mixed), color))
    ax.axhline(0.0, color=BASELINE_COLOR, linewidth=0.9)
    ax.axvline(1.0, color="0.5", linestyle="--", linewidth=0.8)
    for value, _, _ in stars:
        ax.plot([value], [0.0], marker="*", markersize=12, color=BASELINE_COLOR, linestyle="")
    ax.set_ylim(lo, hi)
    log_axis(ax, "x", list(pts["speedup_best"]) + [v for v, _, _ in stars])
    ax.set_xlabel("speedup at batch 1 (paired, ×)")
    ax.set_ylabel("test accuracy change vs baseline (pt)")
    ax.grid(True, alpha=0.3)
    _legend(ax, list(pts["speedup_baseline"]))
    title(fig, f"Accuracy change vs speedup (baseline B: {interval(base['test_acc'], base['acc_lo'], base['acc_hi'])}"
               "%; bars: 95% interval)", look)
    place_labels(ax, labels + [(value, 0.0, text, BASELINE_COLOR) for value, text, _ in stars])
    key_table(key, ["#", "chain", "Δ acc pt [95%]", "noise?", "speedup", "speedup vs"], rows)
    fig.compressbench_points = [{"point": r["point"], "baseline": r["speedup_baseline"]} for _, r in pts.iterrows()]
    return fig


def _noise(r: pd.Series) -> str:
    if r.get("near_chance"):
        return "near chance"
    return {True: "within noise", False: "outside noise", None: "n unknown"}[r.get("within_noise")]


def accuracy_vs_size(table: pd.DataFrame, look: Look, flavour: str = "size_bytes") -> Figure | None:
    pts = numbered(table)
    pts = pts[_num(pts, flavour).notna() & _num(pts, "test_acc").notna()]
    base = _baseline(table)
    if pts.empty or base is None:
        return None
    others = table[(table["status"].astype(str) == "ok") & _num(table, flavour).notna()
                   & _num(table, "test_acc").notna()].drop_duplicates(subset=["stage_key"]
                                                                      if "stage_key" in table else None)
    front = others[stats.pareto_mask(others, flavour)].sort_values(flavour)
    b_acc = float(base["test_acc"])
    usable = pts[~pts["near_chance"].astype(bool)]
    lo, hi = zoom(list(_num(usable, "acc_lo").fillna(usable["test_acc"])) + [base.get("acc_lo", b_acc)],
                  list(_num(usable, "acc_hi").fillna(usable["test_acc"])) + [base.get("acc_hi", b_acc)],
                  b_acc, b_acc - FLOOR_PT, ceiling=100.0)
    rows = [[r["point"], r["chain_to"][:64], human(r[flavour], "B"),
             interval(r["test_acc"], r["acc_lo"], r["acc_hi"]),
             "yes" if r.name in front.index or r.get("stage_key") in set(front.get("stage_key", [])) else "",
             _noise(r)] for _, r in pts.iterrows()]
    fig, (ax,), key = layout(len(rows) + 1, width=8.2)
    ax.axhline(b_acc, color=BASELINE_COLOR, linewidth=0.9)
    if not math.isnan(base.get("acc_lo", math.nan)):
        ax.axhspan(base["acc_lo"], base["acc_hi"], color="0.85", alpha=0.6, linewidth=0)
    inter = others[~others["point"].astype(bool)]
    ax.plot(inter[flavour], inter["test_acc"].clip(lower=lo), marker=".", color="0.6", linestyle="",
            label="other stages")
    if len(front) > 1:
        ax.step(front[flavour], front["test_acc"].clip(lower=lo), where="post", color="0.3", linewidth=1,
                alpha=0.6, label="Pareto front")
    labels = []
    for _, r in pts.iterrows():
        color, y = look.color(r["credited_technique"]), r["test_acc"]
        if y < lo:
            ax.plot(r[flavour], lo, marker="v", color=color, markersize=8, clip_on=False, linestyle="")
            labels.append((r[flavour], lo, f"{r['point']} ({y:.1f}%)", color))
            continue
        err = [[y - r["acc_lo"]], [r["acc_hi"] - y]] if not math.isnan(r["acc_lo"]) else None
        ax.errorbar(r[flavour], y, yerr=err, marker="o", color=color, markersize=7, capsize=3, linestyle="",
                    mfc="white" if r["near_chance"] else color)
        labels.append((r[flavour], y, str(r["point"]), color))
    ax.plot([base[flavour]] if not pd.isna(base.get(flavour)) else [], [b_acc] if not pd.isna(base.get(flavour))
            else [], marker="*", markersize=12, color=BASELINE_COLOR, linestyle="")
    ax.set_ylim(lo, hi)
    bytes_axis(ax, list(others[flavour]) + list(pts[flavour]))
    ax.set_xlabel(f"{flavour}: {SIZE_FLAVOURS.get(flavour, flavour)} (log scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    chance = float(base.get("chance_acc", math.nan))
    note = f"; chance {chance:.1f}% is below the axis" if not math.isnan(chance) and chance < lo else ""
    title(fig, f"Accuracy vs {flavour} (grey band: baseline's 95% interval{note})", look)
    b_item = [(base[flavour], b_acc, "B", BASELINE_COLOR)] if not pd.isna(base.get(flavour)) else []
    place_labels(ax, labels + b_item)
    key_table(key, ["#", "chain", flavour, "test acc % [95%]", "Pareto", "note"], rows)
    return fig
