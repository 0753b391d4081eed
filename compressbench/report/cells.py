"""Cells of the summary's markdown tables: accuracy with its interval, the paired change, sizes, both speedups
each with its baseline, and the table writer the summary and its sections share."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from compressbench.report.labels import reference_runtime
from compressbench.report.tables import cell, human, interval, pct, times


def noise_cell(r: Mapping[str, Any]) -> str:
    if r.get("is_baseline"):
        return "baseline"
    return {True: "within noise", False: "outside noise", None: "n unknown"}[r.get("within_noise")]


FLAVOURS = {"encoded_bytes": "encoded", "deployable_bytes": "file that runs", "size_bytes": "artifact"}


def size_cell(r: Mapping[str, Any]) -> str:
    """The row's stored size and its kind; where the file that runs on its own differs (FX int8's TorchScript
    file beside its int8 weights, a pruned model's dense file beside its encoding), that file too: the
    compression column is its ratio, and a size cell without it would not match that column."""
    text = f"{human(r.get('stored_bytes'), 'B')} ({FLAVOURS.get(str(r.get('stored_flavour')), 'artifact')})"
    if r.get("stored_flavour") == "deployable_bytes":
        return text
    stored = pd.to_numeric(r.get("stored_bytes"), errors="coerce")
    runs = pd.to_numeric(r.get("deployable_bytes"), errors="coerce")
    if pd.isna(runs):
        runs = pd.to_numeric(r.get("size_bytes"), errors="coerce")
    if pd.isna(runs) or pd.isna(stored) or abs(runs - stored) <= 0.005 * stored:  # one file: said once
        return text
    return f"{text}; {human(runs, 'B')} file that runs"


def acc_cell(r: Mapping[str, Any]) -> str:
    text = interval(r.get("test_acc"), r.get("acc_lo"), r.get("acc_hi"), digits=2)
    n = int(r.get("n_seeds") or 1)
    if n > 1:
        text += f"; {pct(r.get('test_acc'), 2)} ± {pct(r.get('test_acc_sd'), 2)} (n={n} seeds)"
    return text


def delta_cell(r: Mapping[str, Any]) -> str:
    if r.get("is_baseline"):
        return "0"
    return interval(r.get("delta_acc"), r.get("delta_lo"), r.get("delta_hi"), digits=2, signed=True) + unpaired_note(r)


def unpaired_note(r: Mapping[str, Any]) -> str:
    """' (unpaired)' on a change without per-image results in a table where others have them."""
    return " (unpaired)" if r.get("delta_mixed") and r.get("delta_method") == "unpaired" else ""


def speed_ref_cell(r: Mapping[str, Any]) -> str:
    """``speedup_vs_reference`` and the fp32 runtime it was paired with: '1.12× vs eager fp32'."""
    value = pd.to_numeric(r.get("speedup_vs_reference"), errors="coerce")
    return "" if value is None or pd.isna(value) else f"{times(value)} vs {reference_runtime(r)} fp32"


def speed_best_cell(r: Mapping[str, Any]) -> str:
    """``speedup_vs_best_fp32`` and the fastest fp32 route it was paired with: '0.11× vs onnxruntime fp32'."""
    value = pd.to_numeric(r.get("speedup_vs_best_fp32"), errors="coerce")
    route = r.get("best_fp32_runtime")
    return "" if value is None or pd.isna(value) else f"{times(value)} vs {route or '?'} fp32"


# Both speedups of a row, each under its results column's name with its baseline in the cell (issue 25): the bare
# word 'speedup' over one of them, chosen per row, read as the other one.
SPEEDUPS: list[tuple[str, str | None, Any]] = [("speedup_vs_reference", None, speed_ref_cell),
                                               ("speedup_vs_best_fp32", None, speed_best_cell)]


def point_cell(r: Mapping[str, Any]) -> str:
    return str(r.get("point") or "·")


FORMAT = {"point": lambda v: v or "·", "n_seeds": lambda v: "" if pd.isna(v) else str(int(v)),
          "params": human, "size_bytes": lambda v: human(v, "B"), "encoded_bytes": lambda v: human(v, "B"),
          "compression_ratio": times, "speedup_best_iqr": lambda v: "" if pd.isna(v) else f"{v:.2f}",
          "latency_ms_p50": lambda v: "" if pd.isna(v) else f"{v:.3g}", "sparsity": lambda v: pct(v, 3),
          "command": lambda v: f"`{v}`" if v else ""}


def spec_table(df: pd.DataFrame, spec: Sequence[tuple[str, str, Any]]) -> str:
    """Markdown from (header, column or None, formatter over the whole row)."""
    lines = ["| " + " | ".join(h for h, _, _ in spec) + " |", "|" + "---|" * len(spec)]
    for _, r in df.iterrows():
        d = r.to_dict()
        lines.append("| " + " | ".join(cell(f(d) if col is None else f(d.get(col))) for _, col, f in spec) + " |")
    return "\n".join(lines)
