"""Report generation on synthetic result tables: failed jobs, NaN values, sweeps, Pareto fronts, findings."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from compressbench.report import collect, enrich, pareto_mask, write_findings, write_report
from compressbench.results import write_results


def row(run: str, index: int, stage: str, kind: str, acc: float, size: float, **extra) -> dict:
    base = {"run_id": run, "experiment": "demo", "model": "lenet5", "dataset": "digits", "seed": 0,
            "stage_index": index, "stage": stage, "kind": kind, "status": "ok", "test_acc": acc,
            "size_bytes": size, "compression_ratio": 90000 / size, "machine": "cpu X (2 cores)", "device": "cpu",
            "runtime": "eager", "threads": 1, "num_classes": 10, "latency_ms_p50": 0.2, "speedup": 1.0}
    return {**base, **extra}


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
    assert "| nan" not in md.lower()
    for name in ("accuracy_vs_size", "accuracy_vs_encoded_bytes", "waterfall", "accuracy_vs_swept",
                 "accuracy_vs_latency"):
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


def test_chain_sweeps_are_labelled_by_their_stages():
    df = pd.DataFrame([row("a", 0, "train", "train", 97, 9e4, overrides="chain=[train,prune,finetune]"),
                       row("b", 0, "train", "train", 97, 9e4, overrides="chain=[train,quantize]")])
    assert enrich(df)["run_label"].tolist() == ["train→prune→finetune", "train→quantize"]


def test_latency_from_two_machines_gets_two_panels(tmp_path: Path):
    rows = [row("a", 0, "train", "train", 97, 9e4), row("b", 0, "train", "train", 96, 9e4, machine="gpu box")]
    write_results(tmp_path / "a" / "results.csv", rows[:1])
    write_results(tmp_path / "b" / "results.csv", rows[1:])
    from compressbench import plots

    fig = plots.accuracy_vs_latency(enrich(collect(tmp_path)[0]))
    assert len(fig.axes) == 2 and "separate panels" in fig._suptitle.get_text()
    plots.close(fig)


def test_findings_get_one_folder_per_experiment(tmp_path: Path):
    make_sweep(tmp_path / "runs")
    write_results(tmp_path / "runs" / "other" / "results.csv",
                  [row("z", 0, "train", "train", 90, 9e4, experiment="second")])
    written = write_findings(tmp_path / "runs", tmp_path / "findings")
    assert sorted(p.name for p in written) == ["demo", "second"]
    demo = pd.read_csv(tmp_path / "findings" / "demo" / "results.csv")
    assert set(demo["experiment"]) == {"demo"} and (tmp_path / "findings/demo/plots/waterfall.png").is_file()
    assert "machine: cpu X (2 cores)" in (tmp_path / "findings/demo/summary.md").read_text()


@pytest.mark.parametrize("empty", [True])
def test_empty_directory_gives_an_empty_report(tmp_path: Path, empty):
    rows = write_report(tmp_path)
    assert rows.empty and (tmp_path / "summary.md").is_file()
