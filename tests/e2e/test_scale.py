"""Scaling out: parallel sweeps with joblib, cluster submission through submitit (local executor here)."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
from clihelp import FAST, cli

pytest.importorskip("hydra_plugins.hydra_joblib_launcher", reason="pip install 'compressbench[parallel]'")


@pytest.mark.slow  # the default suite stays under 10 minutes
def test_parallel_sweep_trains_the_shared_baseline_once(tmp_path: Path):
    sweep = tmp_path / "sweep"
    proc = cli(tmp_path, "-m", *FAST, "train.epochs=3", "finetune.lr=0.01,0.001", "hydra/launcher=joblib",
               "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = pd.read_csv(sweep / "summary.csv")
    train = summary[summary["stage"] == "train"]
    assert len(train) == 2 and sorted(train["cache_hit"]) == [False, True]  # exactly one miss
    assert set(summary["train_threads"]) == {max(1, (os.cpu_count() or 1) // 2)}  # jobs × threads ≤ cores


@pytest.mark.slow  # a submitit executor per job: ~30 s; the joblib test above covers parallel sweeps
def test_submitit_submission_path_runs_every_job(tmp_path: Path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="pip install 'compressbench[cluster]'")
    sweep = tmp_path / "sweep"
    proc = cli(tmp_path, "-m", *FAST, "train.epochs=1,2", "hydra/launcher=submitit_local",
               "hydra.launcher.timeout_min=10", f"hydra.sweep.dir={sweep}", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = pd.read_csv(sweep / "summary.csv")
    assert len(summary) == 4 and set(summary["status"]) == {"ok"}
    assert (sweep / ".submitit").is_dir()  # it really went through submitit's executor


def test_slurm_launcher_config_composes_with_the_usual_knobs(make_cfg):
    from hydra import compose, initialize_config_dir

    from compressbench.config import conf_dir

    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="pip install 'compressbench[cluster]'")
    with initialize_config_dir(config_dir=str(conf_dir()), version_base=None):
        cfg = compose("config", overrides=["hydra/launcher=slurm", "hydra.launcher.partition=gpu"],
                      return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher") and launcher.partition == "gpu"
    for knob in ("timeout_min", "gpus_per_node", "array_parallelism", "cpus_per_task", "mem_gb"):
        assert knob in launcher
