"""Derived columns that name things: technique, the technique a stage's result is credited to, run labels,
one-parameter sweeps, and the baseline each speedup was measured against."""
from __future__ import annotations

import math
from typing import Any

import pandas as pd

from compressbench.report.collect import upgrade_columns


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value not in ("", "nan", "None") else None


def technique_of(kind: Any, method: Any, runtime: Any) -> str:
    """``kind:method``, plus ``@runtime`` off eager: int8 on FX and on ONNX Runtime are different deployments."""
    name = f"{kind}:{_text(method)}" if _text(method) else str(kind)
    return f"{name}@{runtime}" if _text(runtime) and runtime != "eager" else name


def fp32_family(runtime: Any) -> str:
    """The fp32 runtime a stage's ``speedup_vs_reference`` was timed against (measure's same-runtime reference),
    for rows that do not name it (``reference_runtime``: written since issue 25)."""
    text = str(runtime or "eager")
    if text.startswith("onnxruntime"):
        return "onnxruntime"
    if text.startswith("pt2e") or "compiled" in text:
        return "compiled"
    return "eager"


def parse_overrides(text: Any) -> dict[str, str]:
    out = {}
    for token in str(text).split() if isinstance(text, str) else []:
        if "=" in token:
            key, value = token.split("=", 1)
            out[key.lstrip("+~")] = value
    return out


def _short(key: str, value: str) -> str:
    return value.strip("[]").replace(",", "→") if key == "chain" else f"{key}={value}"


def _num(row: pd.Series, col: str) -> float:
    value = pd.to_numeric(row.get(col), errors="coerce")
    return float(value) if value is not None and not pd.isna(value) else math.nan


def reference_runtime(row: pd.Series | dict) -> str:
    """The fp32 runtime ``speedup_vs_reference`` was paired against: the row's ``reference_runtime``, else the
    family of its own runtime. ``onnxruntime``, not the runtime's own ``onnxruntime-fp32``: a label says fp32."""
    named = _text(row.get("reference_runtime"))
    return named.removesuffix("-fp32") if named else fp32_family(row.get("runtime"))


def speedup_columns(row: pd.Series) -> tuple[float, float, str]:
    """(speedup, its IQR, what it is against) — against the fastest fp32 route where that was timed, else the
    row's own same-runtime fp32 reference, named, so the two are never silently mixed."""
    best = _num(row, "speedup_vs_best_fp32")
    if not math.isnan(best):
        route = _text(row.get("best_fp32_runtime")) or "?"
        return best, _num(row, "speedup_vs_best_fp32_iqr"), f"best fp32 ({route})"
    own = _num(row, "speedup_vs_reference")
    if math.isnan(own):
        return math.nan, math.nan, ""
    return own, _num(row, "speedup_vs_reference_iqr"), f"{reference_runtime(row)} fp32"


def enrich(rows: pd.DataFrame) -> pd.DataFrame:
    """Add ``technique``, ``credited_technique`` (a training stage after a technique is its finetune: the gain
    belongs to that technique), ``run_label``, ``speedup_best`` / ``speedup_best_iqr`` / ``speedup_baseline``
    and, for one-parameter numeric sweeps, ``swept`` / ``swept_value``."""
    rows = upgrade_columns(rows.copy())  # rows read by hand from an older results.csv: today's names
    if rows.empty:
        return rows
    col = lambda c: rows[c] if c in rows else pd.Series(None, index=rows.index, dtype=object)  # noqa: E731
    rows["technique"] = [technique_of(k, m, r) for k, m, r in zip(col("kind"), col("method"), col("runtime"),
                                                                    strict=True)]
    credited = pd.Series(rows["technique"], index=rows.index, dtype=object)
    for _, run in rows.groupby("run_id", sort=False):
        current = None
        for i, r in run.sort_values("stage_index").iterrows():
            if str(r["kind"]) == "train" and current is not None:
                credited[i] = current  # a finetune / refit / retrain row belongs to the technique before it
            elif int(r["stage_index"]) > 0 or str(r["kind"]) != "train":
                current = rows.at[i, "technique"]
    rows["credited_technique"] = credited
    speed = [speedup_columns(r) for _, r in rows.iterrows()]
    rows["speedup_best"] = [s[0] for s in speed]
    rows["speedup_best_iqr"] = [s[1] for s in speed]
    rows["speedup_baseline"] = [s[2] for s in speed]

    per_run = {rid: parse_overrides(g["overrides"].iloc[0]) if "overrides" in g else {}
               for rid, g in rows.groupby("run_id", sort=False)}
    keys = sorted({k for o in per_run.values() for k in o if k != "runtime.seed"})
    swept = [k for k in keys if len({o.get(k) for o in per_run.values()}) > 1]
    labels = {}
    for rid, group in rows.groupby("run_id", sort=False):
        o = per_run[rid]
        if swept:
            labels[rid] = ", ".join(_short(k, o.get(k, "default")) for k in swept)
        else:
            labels[rid] = "→".join(str(s) for s in group.sort_values("stage_index")["stage"])
    rows["run_label"] = rows["run_id"].map(labels)
    rows["swept"], rows["swept_value"] = None, math.nan
    if len(swept) == 1:
        values = pd.to_numeric(rows["run_id"].map(lambda r: per_run[r].get(swept[0])), errors="coerce")
        if values.notna().all():
            rows["swept"], rows["swept_value"] = swept[0], values
    return rows
