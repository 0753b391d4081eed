"""The runner end to end on tiny synthetic data: rows, files, cache, determinism, failures."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException

from compressbench.config import ConfigError
from compressbench.infra.registry import UnknownNameError
from compressbench.pipeline.runner import RunFailed, run
from compressbench.results import COLUMNS, read_csv


def test_chain_writes_rows_files_and_plots(make_cfg, tmp_path: Path):
    out = tmp_path / "run"
    rows = run(make_cfg("train.epochs=6"), out, ["train.epochs=6"])
    assert [r["stage"] for r in rows] == ["train", "finetune"]
    assert all(r["status"] == "ok" for r in rows)
    header = (out / "results.csv").read_text().splitlines()[0].split(",")
    assert header[: len(COLUMNS)] == COLUMNS
    train, finetune = rows
    assert train["test_acc"] > 60.0  # 4 classes: chance is 25%
    assert train["params"] > 0 and train["nonzero_params"] == train["params"]
    assert train["size_bytes"] > train["dense_bytes"] * 0.9
    assert train["macs"] > 0 and train["latency_ms_p50"] > 0 and train["throughput_ips"] > 0
    assert train["speedup_vs_reference"] == 1.0 and train["compression_ratio"] == 1.0  # the reference itself
    assert train.get("macs_reduction_pct") is None and finetune["macs_reduction_pct"] == pytest.approx(0.0)
    assert train["test_ties"] == 0 and "test_hits" not in train  # fp32 logits: no ties; hits go to a file
    assert 0.2 < finetune["speedup_vs_reference"] < 5.0  # measured, paired, same architecture
    assert finetune["reference_runtime"] == "eager" and "speedup" not in finetune
    assert finetune["compression_ratio"] == pytest.approx(1.0, abs=0.01)
    assert finetune["reference_stage"] == "train" and train["overrides"] == "train.epochs=6"
    for name in ("config.yaml", "split.json", "status.json", "summary.csv", "summary.md",
                 "plots/accuracy_vs_size.png", "plots/training_curves.png", "stages/00_train/history.csv",
                 "stages/00_train/best.pt", "stages/00_train/last.pt", "stages/00_train/test_hits.npy",
                 "stages/01_finetune/test_hits.npy"):
        assert (out / name).is_file(), name
    assert json.loads((out / "status.json").read_text())["status"] == "ok"
    history = read_csv(out / "stages/00_train/history.csv")
    assert [int(h["epoch"]) for h in history] == [1, 2, 3, 4, 5, 6]


def test_rerun_loads_every_stage_from_the_cache(make_cfg, tmp_path: Path):
    first = run(make_cfg(), tmp_path / "a")
    second = run(make_cfg(), tmp_path / "b")
    assert [r["cache_hit"] for r in first] == [False, False]
    assert [r["cache_hit"] for r in second] == [True, True]
    assert all(r["cache_verified"].startswith("record, ") for r in second)  # what this run checked of the entry
    assert not any("cache_verified" in r for r in first)
    assert [r["test_acc"] for r in first] == [r["test_acc"] for r in second]
    assert first[0]["run_id"] == second[0]["run_id"]
    # What a cached stage wrote (history for the plots, reports) is restored; its checkpoints are not copied.
    assert (tmp_path / "b" / "stages/00_train/history.csv").is_file()
    assert not (tmp_path / "b" / "stages/00_train/last.pt").exists()


def test_changing_a_later_stage_reuses_the_earlier_one(make_cfg, tmp_path: Path):
    run(make_cfg(), tmp_path / "a")
    rows = run(make_cfg("finetune.lr=0.001"), tmp_path / "b")
    assert [r["cache_hit"] for r in rows] == [True, False]


def test_same_seed_same_numbers_without_cache(make_cfg, tmp_path: Path):
    a = run(make_cfg("runtime.cache=false"), tmp_path / "a")
    b = run(make_cfg("runtime.cache=false"), tmp_path / "b")
    assert [r["test_acc"] for r in a] == [r["test_acc"] for r in b]
    ha = read_csv(tmp_path / "a/stages/00_train/history.csv")
    hb = read_csv(tmp_path / "b/stages/00_train/history.csv")
    assert [h["train_loss"] for h in ha] == [h["train_loss"] for h in hb]
    c = run(make_cfg("runtime.cache=false", "runtime.seed=1"), tmp_path / "c")
    assert read_csv(tmp_path / "c/stages/00_train/history.csv")[0]["train_loss"] != ha[0]["train_loss"]
    assert c[0]["seed"] == 1


def test_divergence_is_a_row_not_a_crash(make_cfg, tmp_path: Path):
    out = tmp_path / "run"
    with pytest.raises(RunFailed, match="diverged"):
        run(make_cfg("train.lr=1e12", "train.momentum=0", "runtime.cache=false"), out)
    rows = read_csv(out / "results.csv")
    assert len(rows) == 1 and rows[0]["status"] == "diverged"
    assert "train.lr" in rows[0]["error"] and "not run: finetune" in (out / "status.json").read_text()
    assert rows[0]["test_acc"] != ""  # the last good weights were measured
    assert json.loads((out / "status.json").read_text())["status"] == "failed"


@pytest.mark.parametrize("override, message", [
    ("train.epochs=-1", "train.epochs=-1 is not allowed: >= 0"),
    ("finetune.lr=0", "finetune.lr=0.0 is not allowed: > 0"),
    ("train.optimizer=adam", "train.optimizer='adam' is not allowed: sgd or adamw"),
    ("measure.reference=nope", "measure.reference='nope'"),
    ("chain=[train,polish]", "Each name in chain needs a config node"),
    ("chain=[train,finetnue]", "did you mean 'finetune'?"),
    ("runtime.amp=fp8", "runtime.amp='fp8'"),
])
def test_bad_values_fail_before_any_work(make_cfg, tmp_path: Path, override: str, message: str):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace(".", r"\.")):
        run(make_cfg(override), tmp_path / "run")
    assert not (tmp_path / "data").exists() and not (tmp_path / "run" / "results.csv").exists()


def test_unknown_names_list_the_valid_ones(make_cfg, tmp_path: Path):
    cfg = make_cfg()
    cfg.model.name = "lenet6"
    with pytest.raises(UnknownNameError, match="unknown model 'lenet6'; valid models: .*lenet5"):
        run(cfg, tmp_path / "run")
    with pytest.raises(ConfigCompositionException):
        make_cfg("model=lenet6")  # Hydra itself lists the available options here


def test_typo_in_a_stage_key_fails_at_composition(make_cfg):
    with pytest.raises(ConfigCompositionException, match="amout"):
        make_cfg("train.amout=0.5")
    with pytest.raises(ConfigCompositionException):
        make_cfg("train.epochs=many")


def test_a_cache_hit_reuses_its_measurement_from_earlier_in_the_process(make_cfg, tmp_path: Path):
    """Runs that share a MeasureMemo (the CLI shares one between a sweep's jobs) reuse the measurements of the
    cache hits they share; a run with its own memo measures afresh."""
    from compressbench.pipeline.runner import MeasureMemo, run

    memo = MeasureMemo()
    first = run(make_cfg(), tmp_path / "a", memo=memo)
    again = run(make_cfg("finetune.lr=0.003"), tmp_path / "b", memo=memo)  # the train stage is shared, finetune not
    same = run(make_cfg("measure.iters=4"), tmp_path / "c", memo=memo)  # other timing settings: measured afresh
    layout = run(make_cfg("runtime.channels_last=true"), tmp_path / "d", memo=memo)  # another memory format
    alone = run(make_cfg("finetune.lr=0.002"), tmp_path / "e")  # no memo shared: nothing from earlier runs
    assert alone[0]["cache_hit"] and not alone[0].get("measure_reused")
    assert layout[0]["cache_hit"] and not layout[0].get("measure_reused")
    assert not first[0].get("measure_reused") and again[0]["cache_hit"] and again[0]["measure_reused"]
    assert again[0]["latency_ms_p50"] == first[0]["latency_ms_p50"]  # the same measurement, not a new one
    assert not again[1].get("measure_reused")  # a new finetune is measured
    assert same[0]["cache_hit"] and not same[0].get("measure_reused")
    assert again[0]["test_acc"] == same[0]["test_acc"] == first[0]["test_acc"]
    # A reused measurement keeps its per-image results: the report pairs this run's stages too.
    hits = [(tmp_path / d / "stages/00_train/test_hits.npy").read_bytes() for d in "abc"]
    assert hits[0] == hits[1] == hits[2]
