"""The benchmark scripts still run and write the CSV their findings are made from (tiny settings, no timing
claims: these check the plumbing, the numbers live in findings/). The ones over ~5 s are ``slow``."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def bench(tmp_path: Path, script: str, *args: str) -> pd.DataFrame:
    out = tmp_path / f"{script}.csv"
    env = {**os.environ, "COMPRESSBENCH_DATA_DIR": str(tmp_path / "data"),
           "COMPRESSBENCH_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, str(SCRIPTS / f"{script}.py"), *args, "--out", str(out)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return pd.read_csv(out)


def test_bench_lowrank(tmp_path: Path):
    rows = bench(tmp_path, "bench_lowrank", "--models", "lenet5", "--rounds", "1", "--iters", "2", "--warmup", "1")
    assert len(rows) == 4 and set(rows["conv_scheme"]) == {"channel", "spatial"}
    assert (rows["params_ratio"] > 1.5).all() and (rows["macs_ratio"] > 1.5).all() and (rows["speedup"] > 0).all()


def test_bench_prune(tmp_path: Path):
    rows = bench(tmp_path, "bench_prune", "--batch-sizes", "1", "--rounds", "1", "--iters", "2", "--warmup", "1")
    assert list(rows["variant"]) == ["structured", "unstructured"] and rows["encode_verified"].all()
    assert rows.set_index("variant").loc["unstructured", "macs_ratio"] == 1.0


@pytest.mark.slow
def test_bench_quantize(tmp_path: Path):
    rows = bench(tmp_path, "bench_quantize", "--models", "resnet20", "--backends", "fx", "--rounds", "1",
                 "--iters", "2", "--warmup", "1", "--batch-size", "2")
    assert len(rows) == 2 and (rows["size_ratio"] > 3).all() and (rows["float_ops"] == 0).all()


@pytest.mark.slow
def test_bench_deep_compression(tmp_path: Path):
    rows = bench(tmp_path, "bench_deep_compression", "--models", "lenet300_100", "--epochs-scale", "0.05",
                 "--repeats", "1", "--cache-dir", str(tmp_path / "cache"))
    row = rows.iloc[0]
    assert row["dataset"] == "digits" and "MNIST not found" in row["data_source"] and row["encode_verified"]
    assert row["ratio_p"] < row["ratio_pq"] < row["ratio_pqh"] and row["encoded_bytes"] == row["codec_file_bytes"]
    assert (tmp_path / "bench_deep_compression.png").is_file()


@pytest.mark.slow
def test_bench_distill(tmp_path: Path):
    rows = bench(tmp_path, "bench_distill", "--timing-only", "--rounds", "1", "--min-seconds", "0.05",
                 "--cifar-samples", "64")
    assert {"plain", "kd_cached", "kd_live"} <= set(rows["variant"]) and (rows["seconds_per_epoch"] > 0).all()


@pytest.mark.slow
def test_bench_train(tmp_path: Path):
    rows = bench(tmp_path, "bench_train", "--models", "lenet5", "--samples", "256", "--rounds", "1")
    assert len(rows) == 12 and (rows["images_per_s"] > 0).all()  # 4 routes x (bare, loop, stage)
    assert set(rows["loop"]) == {"bare", "loop", "stage"}
    assert set(rows["route"]) == {"fp32", "channels_last", "bf16", "bf16_channels_last"}
    assert rows.set_index(["route", "loop"]).loc[("fp32", "bare"), "speedup_vs_bare_fp32"] == 1.0


def test_bench_startup(tmp_path: Path):
    rows = bench(tmp_path, "bench_startup", "--rounds", "1")
    assert list(rows["command"]) == ["help", "cfg_job", "config_error", "import_torch"]
    assert (rows["rounds"] == 1).all() and (rows["min_s"] > 0).all() and (rows["min_s"] <= rows["median_s"]).all()
    assert rows.set_index("command").loc["import_torch", "median_over_import_torch"] == 1.0


def test_bench_huffman(tmp_path: Path):
    rows = bench(tmp_path, "bench_huffman", "--symbols", "5000", "--rounds", "2")
    ours = rows.set_index("coder").loc["compressbench"]
    assert ours["payload_bytes"] > 0 and 1 < ours["bits_per_symbol"] < 6  # a skewed 64-symbol alphabet
    if "bitarray" in set(rows["coder"]):  # optional: both are Huffman codes (ours length-limited to 15 bits)
        theirs = rows.set_index("coder").loc["bitarray", "payload_bytes"]
        assert theirs <= ours["payload_bytes"] <= 1.005 * theirs


@pytest.mark.slow
def test_bench_sweep(tmp_path: Path):
    rows = bench(tmp_path, "bench_sweep", "--rounds", "1", "--set", "+debug=smoke", "--set", "chain=[train,prune]",
                 "--set", "measure.fp32_routes=[eager]")
    runs = rows[rows["command"].isin(["one_run", "sweep"])].set_index("command")
    assert runs.loc["one_run", "jobs"] == 1 and runs.loc["sweep", "jobs"] == 4  # one results.csv per job
    ratio = rows.set_index("command").loc["ratio_median", "wall_s"]
    assert ratio == pytest.approx(runs.loc["sweep", "wall_s"] / runs.loc["one_run", "wall_s"])
    assert (runs["stage_wall_s"] > 0).all() and (runs["other_s"] > 0).all()


def test_bench_sharing(tmp_path: Path):
    rows = bench(tmp_path, "bench_sharing", "--models", "lenet5", "--rounds", "1", "--steps", "1")
    assert list(rows["model"]) == ["lenet5"] and rows.loc[0, "live_fraction"] == pytest.approx(0.2, abs=0.01)
    assert rows.loc[0, "plain_ms_per_step"] > 0 and rows.loc[0, "shared_over_plain"] > 0
