"""``+experiment=compare_all``: every technique from one cached baseline, in one command, into one report."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
from clihelp import cli
from hydra import compose, initialize_config_dir

from compressbench.config import conf_dir
from compressbench.pipeline.plan import validate


def branches() -> list[str]:
    with initialize_config_dir(config_dir=str(conf_dir()), version_base=None):
        cfg = compose("config", overrides=["+experiment=compare_all"], return_hydra_config=True)
    text = cfg.hydra.sweeper.params.chain
    return ["[" + b.strip().strip("[],") + "]" for b in text.split("],")]


def test_every_branch_validates():
    chains = branches()
    assert len(chains) >= 8
    for chain in chains:
        with initialize_config_dir(config_dir=str(conf_dir()), version_base=None):
            cfg = compose("config", overrides=["+experiment=compare_all", f"chain={chain}"])
        plan = validate(cfg)
        assert plan.chain[0] == "train"


def test_compare_all_runs_offline_end_to_end(tmp_path: Path):
    sweep = tmp_path / "sweep"
    proc = cli(tmp_path, "+experiment=compare_all", "dataset=synthetic", "train.epochs=2", "finetune.epochs=1",
               "kd.epochs=1", "w4.epochs=1", "retrain.epochs=1", "refit.epochs=1", "measure.latency=false", "runtime.progress=false",
               f"hydra.sweep.dir={sweep}", timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = pd.read_csv(sweep / "summary.csv")
    assert summary["run_id"].nunique() == len(branches()) and set(summary["status"]) == {"ok"}
    train = summary[summary["stage"] == "train"]
    assert (~train["cache_hit"]).sum() == 1  # the baseline was trained once, every other branch loaded it
    assert {"prune:magnitude", "prune:l1_filter", "quantize:static_int8@fx-int8",
            "quantize:static_int8@onnxruntime-int8", "quantize:weight_bits", "distill:kd"} <= set(summary["technique"])
    assert set(summary["runtime"]) >= {"eager", "fx-int8", "onnxruntime-int8"}
    assert set(summary["kind"]) >= {"cluster", "encode", "lowrank"}
    assert summary.loc[summary["kind"] == "encode", "encode_verified"].all()
    for plot in ("accuracy_vs_size", "accuracy_vs_encoded_bytes", "waterfall", "training_curves"):
        assert (sweep / "plots" / f"{plot}.png").is_file(), plot
    assert not (sweep / "plots" / "accuracy_vs_latency.png").exists()  # nothing timed: nothing plotted
    assert "## Pareto-optimal" in (sweep / "summary.md").read_text()
