"""Issue 25: one name, one meaning. Each speedup column says what it is paired against — in the rows a run
returns, in the table it prints and in summary.md — and results folders written under the old name still read."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from report_rows import baseline, row
from test_measure_deployed import CPU, Clock, Fake, _defaults

from compressbench.measure import latency
from compressbench.report import collect, write_report
from compressbench.results import read_csv
from compressbench.results.objective import parse_metric


def test_a_row_names_its_speedup_and_the_runtime_it_was_paired_with(monkeypatch: pytest.MonkeyPatch):
    Clock(monkeypatch)
    got = latency.latency_metrics(Fake(lambda: 0.2, "onnxruntime-int8"), Fake(lambda: 0.4, "onnxruntime-fp32"),
                                  lambda n, d: torch.zeros(n, 1, 8, 8), CPU, _defaults(), None)
    assert "speedup" not in got and got["speedup_vs_reference"] == pytest.approx(2.0)
    assert got["reference_runtime"] == "onnxruntime-fp32"
    assert {"speedup_vs_reference_iqr", "speedup_vs_reference_lo", "speedup_vs_reference_hi"} <= set(got)


def _old_results(run_dir: Path) -> None:
    """A results.csv as versions before issue 25 wrote it: a bare ``speedup`` column, no ``reference_runtime``."""
    rows = [baseline("r"), row("r", 1, "int8", "quantize", 96.6, 35907, method="static_int8", runtime="fx-int8",
                               speedup=1.12, speedup_iqr=0.05, speedup_vs_best_fp32=0.11,
                               best_fp32_runtime="onnxruntime")]
    columns = list(dict.fromkeys(k for r in rows for k in r))
    run_dir.mkdir(parents=True)
    with open(run_dir / "results.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def test_an_old_results_folder_reads_under_the_new_names(tmp_path: Path):
    _old_results(tmp_path / "runs" / "0")
    rows, _, problems = collect(tmp_path / "runs")
    assert not problems and "speedup" not in rows and "speedup_iqr" not in rows
    assert list(rows["speedup_vs_reference"]) == [1.0, 1.12] and list(rows["speedup_vs_reference_iqr"]) == [0, 0.05]
    (plain,) = [r for r in read_csv(tmp_path / "runs" / "0" / "results.csv") if r["stage"] == "int8"]
    assert plain["speedup_vs_reference"] == "1.12" and "speedup" not in plain


def test_the_summary_shows_both_speedups_each_with_its_baseline(tmp_path: Path):
    _old_results(tmp_path / "runs" / "0")
    write_report(tmp_path / "runs", figures=False)
    md = (tmp_path / "runs" / "summary.md").read_text(encoding="utf-8")
    deploy = md.split("## What should I deploy?")[1].split("\n## ")[0]
    header = next(line for line in deploy.splitlines() if line.startswith("| budget"))
    cells = [c.strip() for c in header.strip("|").split("|")]
    assert "speedup" not in cells and "speedup_vs_reference" in cells and "speedup_vs_best_fp32" in cells
    assert "1.12× vs eager fp32" in md and "0.11× vs onnxruntime fp32" in md
    # No table anywhere has a column headed by the bare word.
    headers = [line for line in md.splitlines() if line.startswith("| ") and "---" not in line]
    assert not any("speedup" in [c.strip() for c in h.strip("|").split("|")] for h in headers)


def test_an_objective_naming_the_old_column_still_works():
    assert parse_metric("speedup:max").column == "speedup_vs_reference"
    assert parse_metric("speedup_vs_reference:max").column == "speedup_vs_reference"
