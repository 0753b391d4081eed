"""Text tables: Markdown for summary.md and the aligned terminal table a run prints (at most 120 columns)."""
from __future__ import annotations

import math
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd

from compressbench.report.labels import reference_runtime
from compressbench.results.table import upgrade

TERMINAL_WIDTH = 120


def cell(value: Any) -> str:
    return str(value if value is not None else "").replace("|", "\\|").replace("\n", " ")


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def fmt(value: Any) -> str:
    if _missing(value):
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e6 else f"{value:.3e}"
    return cell(value)


def human(value: Any, unit: str = "") -> str:
    """89541 → '89.5k': sizes and counts a reader compares at a glance."""
    if _missing(value):
        return ""
    v = float(value)
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= scale:
            return f"{v / scale:.3g}{suffix}{unit}"
    return f"{v:.0f}{unit}"


def pct(value: Any, digits: int = 1) -> str:
    return "" if _missing(value) else f"{float(value):.{digits}f}"


def times(value: Any) -> str:
    return "" if _missing(value) else f"{float(value):.2f}×"


def interval(value: Any, low: Any, high: Any, digits: int = 1, signed: bool = False) -> str:
    """'97.2 [95.0, 98.5]' — a value and its 95% interval."""
    if _missing(value):
        return ""
    sign = "+" if signed else ""
    text = f"{float(value):{sign}.{digits}f}"
    if not (_missing(low) or _missing(high)):
        text += f" [{float(low):{sign}.{digits}f}, {float(high):{sign}.{digits}f}]"
    return text


def markdown_table(rows: pd.DataFrame, columns: Sequence[str],
                   formatters: Mapping[str, Callable[[Any], str]] | None = None,
                   headers: Mapping[str, str] | None = None) -> str:
    """A Markdown table of ``columns`` (missing ones left out); NaN is an empty cell, never 'nan'."""
    columns = [c for c in columns if c in rows.columns]
    formatters, headers = formatters or {}, headers or {}
    out = ["| " + " | ".join(headers.get(c, c) for c in columns) + " |", "|" + "---|" * len(columns)]
    for _, r in rows.iterrows():
        out.append("| " + " | ".join(cell(formatters.get(c, fmt)(r[c])) for c in columns) + " |")
    return "\n".join(out)


def _short(runtime: str) -> str:
    return runtime.replace("onnxruntime", "ort")


def vs_reference(row: Mapping[str, Any]) -> str:
    """'1.12× eager': ``speedup_vs_reference`` and the fp32 runtime it was paired against."""
    value = row.get("speedup_vs_reference")
    return "" if _missing(value) or value == "" else f"{times(value)} {_short(reference_runtime(dict(row)))}"


def vs_best_fp32(row: Mapping[str, Any]) -> str:
    """'0.11× ort': ``speedup_vs_best_fp32`` and the fastest fp32 route it was paired against."""
    value = row.get("speedup_vs_best_fp32")
    route = row.get("best_fp32_runtime")
    return "" if _missing(value) or value == "" else f"{times(value)} {_short(str(route or '?'))}"


# (header, how to format a row, priority: the lowest go first when the table is too wide)
_TERMINAL = [
    ("stage", lambda r: str(r.get("stage", ""))[:16], 9),
    ("kind", lambda r: str(r.get("kind", ""))[:9], 3),
    ("status", lambda r: str(r.get("status", "")), 8),
    ("test_acc", lambda r: pct(r.get("test_acc"), 2), 9),
    ("params", lambda r: human(r.get("params")), 4),
    ("sparsity", lambda r: pct(r.get("sparsity"), 2) if not _missing(r.get("sparsity")) else "", 5),
    ("size_bytes", lambda r: human(r.get("size_bytes"), "B"), 9),
    ("encoded_bytes", lambda r: human(r.get("encoded_bytes"), "B"), 8),
    ("ratio", lambda r: times(r.get("compression_ratio")), 7),
    ("macs", lambda r: human(r.get("macs")), 2),
    # Raw latency goes before sparsity when the table is too wide: the two speedups beside it are the paired figures.
    ("p50_ms", lambda r: "" if _missing(r.get("latency_ms_p50")) else f"{float(r['latency_ms_p50']):.3g}", 4.5),
    # Both speedups, each under its results column's name and with its baseline named (issue 25).
    ("speedup_vs_reference", vs_reference, 8),
    ("speedup_vs_best_fp32", vs_best_fp32, 7),
    ("cache", lambda r: "hit" if str(r.get("cache_hit")) == "True" else "", 1),
    ("wall_s", lambda r: "" if _missing(r.get("wall_s")) else f"{float(r['wall_s']):.3g}", 2),
]


def terminal_table(rows: Sequence[Mapping[str, Any]], width: int = TERMINAL_WIDTH) -> str:
    """An aligned table of a run's rows that fits ``width`` columns (empty columns and then the least
    important ones are dropped). Each speedup column says the runtime of the fp32 model it was paired with."""
    rows = [upgrade(r) for r in rows]  # rows read from an older results.csv print like new ones
    cols = [(h, [f(r) for r in rows], p) for h, f, p in _TERMINAL]
    cols = [c for c in cols if any(c[1])]
    while True:
        widths = [max(len(h), *(len(v) for v in vals)) if vals else len(h) for h, vals, _ in cols]
        if sum(widths) + 2 * (len(cols) - 1) <= width or len(cols) <= 1:
            break
        cols.pop(min(range(len(cols)), key=lambda i: cols[i][2]))
    left = {"stage", "kind", "status", "cache"}

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if h in left else c.rjust(w)
                         for c, (h, _, _), w in zip(cells, cols, widths, strict=True))

    lines = [line([h for h, _, _ in cols])] + [line([vals[j] for _, vals, _ in cols]) for j in range(len(rows))]
    return "\n".join(line.rstrip()[:width] for line in lines)


def print_table(rows: Sequence[Mapping[str, Any]], file: Any = None) -> None:
    """The results of one run as an aligned text table, at most 120 columns wide."""
    print("\n" + terminal_table(rows) + "\n", file=file or sys.stdout, flush=True)
