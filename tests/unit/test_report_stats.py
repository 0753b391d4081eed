"""Uncertainty and bookkeeping of the report on hand-made tables: intervals, seeds, budgets, credit, chance."""
from __future__ import annotations

import statistics
from pathlib import Path

import pandas as pd
import pytest
from report_rows import baseline, compare_tree, row, write_run

from compressbench.report import budget_table, build, collect, enrich, stats, write_report
from compressbench.report.cells import size_cell
from compressbench.report.summary import segments


def test_wilson_matches_the_textbook_values():
    lo, hi = stats.wilson(95.0, 100)  # Newcombe (1998), Table I: 95/100 → 0.8882, 0.9785
    assert lo == pytest.approx(88.82, abs=0.02) and hi == pytest.approx(97.85, abs=0.02)
    assert stats.wilson(100.0, 50)[1] == pytest.approx(100.0) and stats.wilson(100.0, 50)[0] < 100.0
    assert all(v != v for v in stats.wilson(90.0, None))  # no n: no interval, never a made-up one


def test_every_interval_contains_its_point(tmp_path: Path):
    compare_tree(tmp_path, seeds=(0,))
    table = build(collect(tmp_path)[0])
    assert len(table) and table["acc_lo"].notna().all()
    assert (table["acc_lo"] <= table["test_acc"] + 1e-9).all() and (table["test_acc"] <= table["acc_hi"] + 1e-9).all()
    assert (table["delta_lo"] <= table["delta_acc"] + 1e-9).all()
    assert (table["delta_acc"] <= table["delta_hi"] + 1e-9).all()
    # 359 images: one image is 0.28 pt, so a 0.3 pt change is within noise and a 46 pt drop is not.
    final = table.set_index("stage")
    assert bool(final.loc["int8", "within_noise"]) and not bool(final.loc["l1_filter", "within_noise"])


def test_a_seed_sweep_is_aggregated_with_n_and_sd(tmp_path: Path):
    compare_tree(tmp_path, seeds=(0, 1, 2))
    write_report(tmp_path)
    table = build(collect(tmp_path)[0])
    kd = table[table["stage"] == "kd"].iloc[0]
    accs = [95.8 + 0.3 * s for s in (0, 1, 2)]
    assert kd["n_seeds"] == 3 and kd["test_acc"] == pytest.approx(statistics.mean(accs))
    assert kd["test_acc_sd"] == pytest.approx(statistics.stdev(accs))
    assert kd["acc_lo"] < kd["test_acc"] < kd["acc_hi"]
    assert table["branch"].nunique() == 5  # 15 runs, five branches
    md = (tmp_path / "summary.md").read_text()
    assert f"± {statistics.stdev(accs):.2f} (n=3 seeds)" in md
    assert "python -m compressbench -m " in md and "runtime.seed=0,1,2" in md


def test_budget_table_picks_the_right_rows(tmp_path: Path):
    compare_tree(tmp_path)
    table = build(collect(tmp_path)[0])
    picks, notes = budget_table(table)
    pick = {(r["budget"], r["pick"]): r for _, r in picks.iterrows()}
    # ≤ 0.5 pt: int8 (−0.34, 35.9 kB) is the smallest that runs; the prune branch (−0.44, 26.7 kB) beats it.
    assert pick[("≤ 0.5 pt", "smallest that runs as is")]["stage"] == "finetune"
    # ≤ 2 pt: the distilled student (−1.14 pt, 13.8 kB) is smaller still.
    assert pick[("≤ 2 pt", "smallest that runs as is")]["stage"] == "kd"
    # Fastest among speedups against the best fp32 route: the baseline itself on ONNX Runtime fp32 (1×)
    # beats both int8 models (0.73×, 0.11×); kd's 1.44× is against eager fp32 and is not ranked with them.
    fastest = pick[("≤ 2 pt", "fastest")]
    assert fastest["is_baseline"] and fastest["deploy"] == "fp32 on onnxruntime"
    assert any("kd" in n and "1.44× vs eager fp32" in n for n in notes)
    # The chance-level model has the smallest encoding of all, and is never picked.
    assert "cluster" not in set(picks["stage"])


def test_smallest_that_runs_as_is_means_the_file_that_runs(tmp_path: Path):
    # PT2E int8 weights are 30 kB but need compressbench to rebuild the module; the file that runs alone is
    # 62.8 kB. ONNX Runtime int8's 33.1 kB file runs as it is: it is the smallest that runs.
    write_run(tmp_path, "0", [baseline("a"), row("a", 1, "int8_pt2e", "quantize", 96.9, 3.0e4,
                                                 deployable_bytes=6.28e4, runtime="pt2e-int8-compiled")])
    write_run(tmp_path, "1", [baseline("b"), row("b", 1, "int8_ort", "quantize", 96.9, 3.31e4,
                                                 deployable_bytes=3.31e4, runtime="onnxruntime-int8")])
    picks, _ = budget_table(build(collect(tmp_path)[0]))
    small = picks[picks["pick"] == "smallest that runs as is"].iloc[0]
    assert small["stage"] == "int8_ort" and small["stored_bytes"] == 3.31e4
    assert size_cell(small.to_dict()) == "33.1kB (file that runs)"


def test_a_finetune_is_credited_to_the_technique_before_it(tmp_path: Path):
    compare_tree(tmp_path)
    rows = enrich(collect(tmp_path)[0])
    finetune = rows[rows["stage"] == "finetune"].iloc[0]
    assert finetune["technique"] == "train" and finetune["credited_technique"] == "prune:l1_filter"
    seg = segments(build(collect(tmp_path)[0]))
    prune = seg[seg["technique"] == "prune:l1_filter"].iloc[0]
    assert prune["steps"] == "l1_filter → finetune" and prune["size_x"] == pytest.approx(89541 / 26693)
    assert "train" not in set(seg["technique"])  # no gain is credited to a finetune row


def test_near_chance_points_are_marked_and_never_pareto(tmp_path: Path):
    compare_tree(tmp_path)
    write_report(tmp_path)
    table = build(collect(tmp_path)[0])
    assert bool(table.loc[table["stage"] == "cluster", "near_chance"].iloc[0])
    md = (tmp_path / "summary.md").read_text()
    encoded = md.split("test accuracy vs encoded_bytes")[1].split("##")[0]
    assert "cluster" not in encoded and "near chance" in md


def test_a_running_job_is_in_progress_never_failed(tmp_path: Path):
    write_run(tmp_path, "0", [baseline("r"), row("r", 1, "prune", "prune", 96.0, 9e4)], status="running")
    write_run(tmp_path, "1", [baseline("s")], status="failed")
    write_report(tmp_path)
    md = (tmp_path / "summary.md").read_text()
    failed = md.split("## Failed jobs")[1].split("##")[0]
    assert "## Jobs in progress" in md and "| 0 |" in md.split("## Jobs in progress")[1].split("##")[0]
    assert "running" not in failed and "| 1 |" in failed


def test_speedups_against_different_baselines_are_never_pooled():
    rows = enrich(pd.DataFrame([row("a", 1, "int8", "quantize", 96, 3e4, runtime="onnxruntime-int8", speedup=0.7,
                                    speedup_vs_best_fp32=0.7, best_fp32_runtime="onnxruntime"),
                                row("b", 1, "kd", "distill", 96, 1e4, speedup=1.4),
                                row("c", 1, "int8", "quantize", 96, 3e4, runtime="onnxruntime-int8", speedup=2.4)]))
    assert rows["speedup_baseline"].tolist() == ["best fp32 (onnxruntime)", "eager fp32", "onnxruntime fp32"]


def test_seeds_with_and_without_a_best_fp32_timing_never_mix_baselines(tmp_path: Path):
    for seed, best in ((0, None), (1, 0.12), (2, 0.10)):  # seed 0's quantize came from the cache, untimed
        extra = {"speedup_vs_best_fp32": best, "best_fp32_runtime": "onnxruntime"} if best else {}
        write_run(tmp_path, str(seed), [baseline(f"r{seed}", seed=seed, overrides=f"runtime.seed={seed}"),
                                        row(f"r{seed}", 1, "int8", "quantize", 96.0, 3e4, runtime="fx-int8",
                                            speedup=0.95, seed=seed, overrides=f"runtime.seed={seed}", **extra)])
    int8 = build(collect(tmp_path)[0]).set_index("stage").loc["int8"]
    assert int8["n_seeds"] == 3 and int8["speedup_baseline"] == "best fp32 (onnxruntime)"
    assert int8["speedup_best"] == pytest.approx(0.11)  # the median of the two best-fp32 timings only


def test_a_stage_that_made_no_model_is_listed_not_fatal(tmp_path: Path):
    write_run(tmp_path, "0", [baseline("u"), row("u", 1, "again", "quantize", float("nan"), float("nan"),
                                                 status="unsupported", error="Unsupported: already quantized")])
    write_report(tmp_path)
    md = (tmp_path / "summary.md").read_text()
    assert "## Unsupported stages" in md and "already quantized" in md


def test_a_retrain_of_shared_weights_is_stored_as_the_file_before_it_never_its_dense_size(tmp_path: Path):
    # prune → finetune (sparse file 30 kB) → cluster (DC file 10 kB) → retrain (no file measured) → encode (10 kB):
    # the cluster step ends on the retrain, whose dense 89.5 kB is not what it ships ("0.3× smaller" was false);
    # its file is the cluster's (assignments fixed), so cluster gets 3× and encode, which changes nothing, 1×.
    write_run(tmp_path, "0", [
        baseline("r"),
        row("r", 1, "magnitude", "prune", 96.0, 89541, encoded_bytes=30000, method="magnitude"),
        row("r", 2, "finetune", "train", 96.5, 89541, encoded_bytes=30000),
        row("r", 3, "cluster", "cluster", 96.4, 89541, encoded_bytes=10000, distinct_values_max=32),
        row("r", 4, "retrain", "train", 96.6, 89541, distinct_values_max=32),
        row("r", 5, "encode", "encode", 96.6, 89541, encoded_bytes=10000, distinct_values_max=32)])
    seg = segments(build(collect(tmp_path)[0])).set_index("technique")
    cluster = seg.loc["cluster"]
    assert cluster["steps"] == "cluster → retrain" and cluster["stored_x"] == pytest.approx(3.0)
    assert seg.loc["encode", "stored_x"] == pytest.approx(1.0)
    assert seg.loc["prune:magnitude", "stored_x"] == pytest.approx(89541 / 30000)


def test_a_shared_weights_row_without_any_file_before_it_has_no_stored_size():
    from compressbench.report.summary import _carry_shared_files

    rows = [{"stage": "train", "stored_bytes": 9e4}, {"stage": "retrain", "stored_bytes": 9e4, "distinct_values_max": 32}]
    carried = _carry_shared_files(rows)
    assert carried[0]["stored_bytes"] == 9e4 and carried[1]["stored_bytes"] != carried[1]["stored_bytes"]  # NaN


@pytest.mark.parametrize(("row", "expected"), [
    # FX int8: the int8 weights are stored; the TorchScript file is what runs, and what the ratio divides.
    ({"stored_bytes": 3.32e5, "stored_flavour": "size_bytes", "size_bytes": 3.32e5, "deployable_bytes": 4.18e5},
     "332kB (artifact); 418kB file that runs"),
    # Magnitude pruning: the encoding is smaller; the dense file runs.
    ({"stored_bytes": 2.63e5, "stored_flavour": "encoded_bytes", "size_bytes": 1.14e6},
     "263kB (encoded); 1.14MB file that runs"),
    # One file: said once.
    ({"stored_bytes": 3.31e5, "stored_flavour": "size_bytes", "size_bytes": 3.31e5, "deployable_bytes": 3.31e5},
     "331kB (artifact)"),
    ({"stored_bytes": 3.31e5, "stored_flavour": "deployable_bytes", "size_bytes": 3.0e5},
     "331kB (file that runs)"),
])
def test_size_cell_names_the_file_that_runs_where_it_is_another(row: dict, expected: str):
    assert size_cell(row) == expected
