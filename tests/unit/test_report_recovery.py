"""Recovery curves (report/recovery.py): each technique's accuracy against retraining, in every report."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
from report_rows import BASE, baseline, row, write_run

from compressbench.report import recovery
from compressbench.report.collect import collect
from compressbench.report.write import build, write_report


def _epochs(accs: list[float], seconds: float = 10.0) -> list[dict]:
    return [{"stage": "finetune", "epoch": e + 1, "train_loss": 1.0 / (e + 1), "val_acc": a, "seconds": seconds}
            for e, a in enumerate(accs)]


def _sweep(root: Path) -> None:
    """Two pruning branches from one baseline (val 90%): magnitude recovers in 2 epochs, L1-filter never; a KD
    student trained from scratch."""
    base = {**baseline("m"), "val_acc": 90.0}
    write_run(root, "0", [base, row("m", 1, "magnitude", "prune", 40.0, BASE, val_acc=41.0, method="magnitude"),
                          row("m", 2, "finetune", "train", 88.9, BASE, val_acc=89.5)],
              history={"02_finetune": _epochs([85.0, 89.2, 89.5])})
    write_run(root, "1", [{**baseline("l"), "val_acc": 90.0},
                          row("l", 1, "l1_filter", "prune", 20.0, 26693, val_acc=21.0, method="l1_filter"),
                          row("l", 2, "finetune", "train", 80.0, 26693, val_acc=80.5)],
              history={"02_finetune": _epochs([60.0, 75.0, 80.5], seconds=5.0)})
    write_run(root, "2", [{**baseline("k"), "val_acc": 90.0},
                          row("k", 1, "kd", "distill", 70.0, 13799, val_acc=71.0, method="kd")],
              history={"01_kd": _epochs([30.0, 55.0, 71.0])})


def test_recoveries_start_where_compression_left_them(tmp_path: Path):
    _sweep(tmp_path)
    rows, _, _ = collect(tmp_path)
    recs = {r.label.split()[-1]: r for r in recovery.recoveries(build(rows), tmp_path)}
    assert set(recs) == {"train→magnitude→finetune", "train→l1_filter→finetune", "train→kd"}
    assert recs["train→magnitude→finetune"].start_acc == 41.0  # the prune row's val acc: epoch 0
    assert recs["train→kd"].start_acc is None  # a student starts from scratch
    assert recs["train→l1_filter→finetune"].seconds == [5.0, 10.0, 15.0]  # cumulative training seconds

    base = recovery.baseline_val(build(rows), tmp_path)
    assert base[0] == 90.0 and base[1] < 90.0 < base[2]  # 100 val images: a wide interval
    table = recovery.recovery_table(list(recs.values()), base).set_index("technique")
    assert table.loc["prune:magnitude", "epochs_to_within_1pt"] == 2  # 89.2 >= 89.0
    assert table.loc["prune:magnitude", "seconds_to_within_1pt"] == 20.0
    assert pd.isna(table.loc["prune:l1_filter", "epochs_to_within_1pt"])  # 80.5 never reaches 89


def test_every_report_with_finetunes_draws_and_tabulates_them(tmp_path: Path):
    _sweep(tmp_path)
    write_report(tmp_path)
    text = (tmp_path / "summary.md").read_text()
    assert "## Recovery: how much retraining each technique needs" in text
    assert "back within 1 pt of the baseline after 2 epoch(s) (20 s of training)" in text
    assert "not within 1 pt in 3 epoch(s)" in text
    assert (tmp_path / "plots" / "recovery.png").stat().st_size > 10_000


def test_a_findings_copy_draws_the_same_recovery(tmp_path: Path):
    from compressbench.report.write import write_findings

    _sweep(tmp_path / "sweep")
    write_findings(tmp_path / "sweep", tmp_path / "findings")  # copies each stage's history.csv
    again = tmp_path / "findings" / "demo"
    write_report(again)
    assert "back within 1 pt of the baseline after 2 epoch(s)" in (again / "summary.md").read_text()
    assert (again / "plots" / "recovery.png").exists()


def test_no_recovery_section_without_retraining(tmp_path: Path):
    write_run(tmp_path, "0", [baseline("q"), row("q", 1, "int8", "quantize", 96.6, 35907)],
              history={"00_train": _epochs([80.0, 90.0])})
    write_report(tmp_path)
    assert "Recovery" not in (tmp_path / "summary.md").read_text()
    assert not (tmp_path / "plots" / "recovery.png").exists()
