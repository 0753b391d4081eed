"""Report generation on synthetic result tables: failed jobs, NaN values, sweeps, Pareto fronts, findings,
where files go (and where they never go), the terminal table."""
from __future__ import annotations

import io
import json
import math
from pathlib import Path

import pandas as pd
import pytest
from report_rows import row

from compressbench.report import collect, enrich, main, pareto_mask, print_table, write_findings, write_report
from compressbench.report.points import command
from compressbench.results import write_results


def make_sweep(root: Path) -> None:
    for job, amount in enumerate((0.3, 0.6, 0.9)):
        run = f"r{job}"
        rows = [row(run, 0, "train", "train", 97.0, 90000, overrides=f"prune.amount={amount}"),
                row(run, 1, "prune", "prune", 97 - 10 * amount, 90000, method="magnitude",
                    encoded_bytes=90000 * (1 - amount), overrides=f"prune.amount={amount}",
                    latency_ms_p50=float("nan"), speedup=float("nan"))]
        write_results(root / str(job) / "results.csv", rows)
        (root / str(job) / "status.json").write_text(json.dumps({"status": "ok", "overrides": f"prune.amount={amount}"}))
    (root / "3").mkdir()  # a job that died before writing a row
    (root / "3" / "status.json").write_text(json.dumps(
        {"status": "failed", "overrides": "prune.amount=1.5", "error": "BadValue: prune.amount=1.5"}))
    write_results(root / "4" / "results.csv", [row("r4", 0, "train", "train", float("nan"), 90000,
                                                   status="diverged", error="non-finite loss",
                                                   overrides="prune.amount=0.1")])
    (root / "4" / "status.json").write_text(json.dumps(
        {"status": "failed", "overrides": "prune.amount=0.1", "error": "RunFailed: stage 'train' diverged"}))


def test_sweep_report_lists_failures_and_never_plots_nan(tmp_path: Path):
    make_sweep(tmp_path)
    rows = write_report(tmp_path)
    assert len(rows) == 7
    md = (tmp_path / "summary.md").read_text()
    assert "## Failed jobs" in md and "prune.amount=1.5" in md and "diverged" in md
    assert "nan" not in md.lower().replace("nanoseconds", "")
    for name in ("accuracy_vs_size", "accuracy_vs_encoded_bytes", "waterfall", "accuracy_vs_swept"):
        assert (tmp_path / "plots" / f"{name}.png").stat().st_size > 1000, name
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert set(summary["technique"]) == {"train", "prune:magnitude"}
    assert summary.loc[summary["run_id"] == "r1", "run_label"].iloc[0] == "prune.amount=0.6"
    assert summary["swept"].dropna().unique().tolist() == ["prune.amount"]


def test_report_is_idempotent_and_dedups_reruns(tmp_path: Path):
    make_sweep(tmp_path)
    write_results(tmp_path / "0b" / "results.csv",  # the same job rerun into another folder
                  [row("r0", 0, "train", "train", 97.0, 90000, overrides="prune.amount=0.3")])
    write_report(tmp_path)
    first = (tmp_path / "summary.csv").read_text()
    write_report(tmp_path)
    assert (tmp_path / "summary.csv").read_text() == first
    rows, _, _ = collect(tmp_path)
    assert not rows.duplicated(["run_id", "stage_index"]).any()


def test_pareto_front():
    df = pd.DataFrame({"status": ["ok"] * 5 + ["failed"], "size_bytes": [10, 20, 30, 15, 5, 1],
                       "test_acc": [90, 95, 94, 89, math.nan, 99]})
    assert pareto_mask(df, "size_bytes").tolist() == [True, True, False, False, False, False]
    df["near_chance"] = [True, False, False, False, False, False]  # the smallest is useless: not on the front
    assert pareto_mask(df, "size_bytes").tolist() == [False, True, False, True, False, False]


def test_chain_sweeps_are_labelled_by_their_stages():
    df = pd.DataFrame([row("a", 0, "train", "train", 97, 9e4, overrides="chain=[train,prune,finetune]"),
                       row("b", 0, "train", "train", 97, 9e4, overrides="chain=[train,quantize]")])
    assert enrich(df)["run_label"].tolist() == ["train→prune→finetune", "train→quantize"]


def test_a_rows_command_leaves_out_where_this_machine_kept_its_files():
    overrides = ("+experiment=x paths.data_dir=/data ++paths.cache_dir=/work/cache runtime.progress=False "
                 "chain=[train,prune,finetune]")
    line = command(pd.Series({"overrides": overrides, "stage": "prune", "seeds": "0"}), ["train", "prune", "finetune"])
    assert line == "python -m compressbench +experiment=x paths.data_dir=/data 'chain=[train,prune]'"


def test_findings_get_one_folder_per_experiment_and_no_lock_files(tmp_path: Path):
    make_sweep(tmp_path / "runs")
    write_results(tmp_path / "runs" / "other" / "results.csv",
                  [row("z", 0, "train", "train", 90, 9e4, experiment="second")])
    written = write_findings(tmp_path / "runs", tmp_path / "findings")
    assert sorted(p.name for p in written) == ["demo", "second"]
    demo = pd.read_csv(tmp_path / "findings" / "demo" / "results.csv")
    assert set(demo["experiment"]) == {"demo"} and (tmp_path / "findings/demo/plots/waterfall.png").is_file()
    assert "machine: cpu X (2 cores)" in (tmp_path / "findings/demo/summary.md").read_text()
    leftovers = [p for p in (tmp_path / "findings").rglob("*") if p.name.startswith(".") or p.suffix == ".lock"]
    assert not leftovers


def test_an_unsafe_experiment_name_never_writes_outside_the_findings_dir(tmp_path: Path, capsys):
    runs, findings = tmp_path / "deep" / "runs", tmp_path / "deep" / "findings"
    write_results(runs / "0" / "results.csv", [row("a", 0, "train", "train", 97, 9e4, experiment="../../X"),
                                               row("b", 0, "train", "train", 97, 9e4, experiment="/abs"),
                                               row("c", 0, "train", "train", 97, 9e4, experiment="ok_name")])
    assert [p.name for p in write_findings(runs, findings)] == ["ok_name"]
    assert not (tmp_path / "X").exists() and not Path("/abs").exists()
    assert {p.parent.name for p in findings.rglob("summary.md")} == {"ok_name"}
    assert "not a safe folder name" in capsys.readouterr().err


def test_the_command_writes_into_findings_only_when_asked(tmp_path: Path, monkeypatch):
    make_sweep(tmp_path / "runs")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "findings").mkdir()
    assert main([str(tmp_path / "runs")]) == 0
    assert not list((tmp_path / "findings").iterdir())  # the repo's findings/ stays untouched
    assert (tmp_path / "runs" / "summary.md").is_file()
    assert main([str(tmp_path / "runs"), "--findings-dir", str(tmp_path / "elsewhere")]) == 0
    assert (tmp_path / "elsewhere" / "demo" / "summary.md").is_file()


def test_terminal_table_fits_120_columns_and_shows_the_encoding():
    rows = [row("a", 0, "finetune_with_a_long_name", "train", 97.123, 89541, params=21386, sparsity=0.0,
                macs=66600, cache_hit=True, wall_s=1.5, latency_ms_p50=0.181),
            row("a", 1, "prune", "prune", 94.4, 89541, encoded_bytes=20480, sparsity=0.79, params=21386,
                macs=66600, wall_s=0.01, latency_ms_p50=0.174, method="magnitude"),
            row("a", 2, "int8", "quantize", 97.5, 35907, runtime="fx-int8", speedup=0.94, params=21386,
                speedup_vs_best_fp32=0.113, best_fp32_runtime="onnxruntime", macs=66600, wall_s=2.0)]
    buf = io.StringIO()
    print_table(rows, file=buf)
    lines = [line for line in buf.getvalue().splitlines() if line]
    assert max(len(line) for line in lines) <= 120
    assert "encoded_bytes" in lines[0] and "20.5kB" in lines[2]
    # Both speedups, each under its results column's name, each with the runtime it was paired against (issue 25).
    header = lines[0].split()
    assert "speedup_vs_reference" in header and "speedup_vs_best_fp32" in header and "speedup" not in header
    at = lines[0].index("speedup_vs_reference"), lines[0].index("speedup_vs_best_fp32")
    assert lines[3][at[0]:at[1]].strip() == "0.94× eager" and lines[3][at[1]:].strip() == "0.11× ort"


@pytest.mark.parametrize("empty", [True])
def test_empty_directory_gives_an_empty_report(tmp_path: Path, empty):
    rows = write_report(tmp_path)
    assert rows.empty and (tmp_path / "summary.md").is_file()


def test_a_sweep_without_rows_yet_has_a_summary_csv_with_its_header(tmp_path: Path):
    write_report(tmp_path)  # what a sweep writes at its start, before any job has a row
    table = pd.read_csv(tmp_path / "summary.csv")  # a 0-byte file: EmptyDataError
    assert table.empty and {"run_id", "stage", "test_acc", "size_bytes"} <= set(table.columns)
