"""Repeat timings of one artifact that disagree (issue 26).

Rows that measured the same model on the same runtime — a quantize row and the export row after it, or one stage
reused by several jobs of a sweep — are repeats of one paired timing and should agree within their intervals.
Where they do not, one of them was disturbed: the report flags every row of such a group (``timing_disagrees``)
and lists the groups in summary.md. It never picks one of them as the right figure.
"""
from __future__ import annotations

import math
from typing import Any

import pandas as pd

# Paired figures compared between repeats: (value column, its IQR column for rows without an interval).
FIGURES = (("speedup_vs_best_fp32", "speedup_vs_best_fp32_iqr"),
           ("speedup_vs_reference", "speedup_vs_reference_iqr"))
SAME_CONDITIONS = ("runtime", "threads", "device", "machine")  # a repeat times the artifact the same way
COLUMN = "timing_disagrees"
MATERIAL = 1.05  # and differ by more than 5% (measure.tolerance's default): a narrow interval's 1% is not news


def _num(value: Any) -> float:
    v = pd.to_numeric(value, errors="coerce")
    return float(v) if v is not None and not pd.isna(v) else math.nan


def artifact_ids(rows: pd.DataFrame) -> pd.Series:
    """Which artifact each row measured: its ``artifact_sha256`` where recorded; else its ``stage_key``, an
    export row taking the key of the row before it in its run (export hands its input on unchanged)."""
    ids = pd.Series(None, index=rows.index, dtype=object)
    for _, run in rows.groupby("run_id", sort=False):
        previous = None
        for i, r in run.sort_values("stage_index").iterrows():
            sha, key = r.get("artifact_sha256"), r.get("stage_key")
            if isinstance(sha, str) and sha:
                ids[i] = f"sha:{sha}"
            elif isinstance(key, str) and key:
                ids[i] = previous if str(r.get("kind")) == "export" and previous else f"key:{key}"
            previous = ids[i]
    return ids


def interval(row: pd.Series, column: str, iqr_column: str) -> tuple[float, float] | None:
    """The row's 95% interval of ``column`` (``<column>_lo``/``_hi``); for rows timed before those were
    recorded, the middle half of its per-round ratios (value ± IQR/2); None without either."""
    value, low, high = _num(row.get(column)), _num(row.get(f"{column}_lo")), _num(row.get(f"{column}_hi"))
    if math.isnan(value):
        return None
    if not (math.isnan(low) or math.isnan(high)):
        return low, high
    iqr = _num(row.get(iqr_column))
    return None if math.isnan(iqr) else (value - iqr / 2, value + iqr / 2)


def disagreements(rows: pd.DataFrame) -> list[dict[str, Any]]:
    """Groups of repeats whose intervals of one figure do not all overlap and whose values differ by more than
    5%: figure, runtime, and the rows' index, value and interval."""
    if rows.empty or "run_id" not in rows or "stage_index" not in rows:
        return []
    keyed = rows.assign(_artifact=artifact_ids(rows))
    ok = keyed["status"].astype(str) == "ok" if "status" in keyed else True
    keyed = keyed[keyed["_artifact"].notna() & ok]
    conditions = [c for c in SAME_CONDITIONS if c in keyed]
    found = []
    for _, group in keyed.groupby(["_artifact", *conditions], sort=False, dropna=False):
        if len(group) < 2:
            continue
        for column, iqr_column in FIGURES:
            spans = {i: s for i, r in group.iterrows() if (s := interval(r, column, iqr_column)) is not None}
            values = [_num(group.at[i, column]) for i in spans]
            if len(spans) >= 2 and max(lo for lo, _ in spans.values()) > min(hi for _, hi in spans.values()) \
                    and max(values) > MATERIAL * min(values):
                found.append({"figure": column, "runtime": group["runtime"].iloc[0] if "runtime" in group else "",
                              "rows": [(i, _num(group.at[i, column]), spans[i]) for i in spans]})
    return found


def flag(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` with ``timing_disagrees``: the figures (``speedup_vs_best_fp32``, ``speedup_vs_reference``) in
    which the row's artifact was timed differently elsewhere beyond both intervals; empty where it agrees or has
    no repeat."""
    rows = rows.copy()
    marks: dict[Any, list[str]] = {}
    for group in disagreements(rows):
        for i, _, _ in group["rows"]:
            marks.setdefault(i, []).append(group["figure"])
    rows[COLUMN] = [", ".join(marks.get(i, [])) for i in rows.index]
    return rows


def section(rows: pd.DataFrame) -> list[str]:
    """summary.md lines naming every group of repeats that disagree (none: no lines)."""
    groups = disagreements(rows)
    if not groups:
        return []
    lines = ["## Repeat timings that disagree", "",
             "These rows timed one artifact on one runtime, yet their 95% intervals (the middle half of the "
             "per-round ratios for rows timed before intervals were recorded) do not overlap and their values "
             "differ by more than 5%: at least one timing was disturbed. Neither figure is the artifact's speed; "
             "time it again (a longer `measure.min_time_s`).",
             ""]
    for g in groups:
        parts = []
        for i, value, (lo, hi) in g["rows"]:
            r = rows.loc[i]
            parts.append(f"{r.get('stage')} ({str(r.get('run_id'))[:8]}) {value:.3g}× [{lo:.3g}, {hi:.3g}]")
        lines.append(f"- `{g['figure']}` on {g['runtime']}: " + "; ".join(parts))
    return [*lines, ""]
