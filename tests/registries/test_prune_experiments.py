"""The shipped pruning experiments: they compose, name layers their models have, and run on tiny stand-ins."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from omegaconf import OmegaConf

from compressbench.config import conf_dir
from compressbench.models import build_model
from compressbench.pipeline.plan import validate
from compressbench.pipeline.runner import run
from compressbench.results import read_csv
from compressbench.stages import STAGES

EXPERIMENTS = ["lenet5_prune", "lenet300_prune", "resnet56_prune_sweep", "resnet56_l1filter_a",
               "resnet56_l1filter_b", "vgg16_l1filter_a", "resnet50_prune_quant"]
SHAPES = {"digits": (10, 1, 8), "mnist": (10, 1, 28), "cifar10": (10, 3, 32)}  # classes, channels, side
TINY = ["train.epochs=1", "train.batch_size=16", "finetune.epochs=0", "measure.latency=false",
        "runtime.progress=false"]


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_validates_and_names_real_layers(make_cfg, name):
    cfg = make_cfg(f"+experiment={name}", fast=False)
    plan = validate(cfg)
    assert plan.name == name and plan.chain[:3] == ["train", "prune", "finetune"]
    prune = plan.stages["prune"]
    options = OmegaConf.to_container(cfg.model)
    options.pop("pretrained", None)  # no download in tests; the layer names are the same
    model = build_model(options, *SHAPES[cfg.dataset.name])
    STAGES.get("prune").check_model(prune, model)  # every ignored / per-layer name exists in the real model


def test_the_sweep_experiment_sweeps_the_four_amounts_by_default():
    node = OmegaConf.load(conf_dir() / "experiment" / "resnet56_prune_sweep.yaml")
    assert node.hydra.sweeper.params["prune.amount"] == "0.3,0.5,0.7,0.9"


def test_lenet5_prune_runs_offline_on_digits(make_cfg, tmp_path: Path):
    rows = run(make_cfg("+experiment=lenet5_prune", *TINY, fast=False), tmp_path / "run")
    prune = rows[1]
    assert prune["dataset"] == "digits" and prune["stage"] == "prune" and prune["status"] == "ok"
    assert prune["achieved_sparsity"] == pytest.approx(0.8, abs=1e-3) and prune["encode_verified"] is True


def test_li_pruned_a_on_a_stand_in_dataset(make_cfg, tmp_path: Path):
    out = tmp_path / "run"
    untrained = ["train.epochs=0", *TINY[1:]]  # the recipe is about which channels go, not accuracy
    rows = run(make_cfg("+experiment=resnet56_l1filter_a", "dataset=synthetic", "dataset.in_channels=3",
                        *untrained, fast=False), out)
    prune = rows[1]
    assert prune["status"] == "ok" and 1.05 < prune["macs_reduction"] < 1.15  # the paper: -10.4% FLOPs
    layers = {r["layer"]: int(r["out_channels"]) for r in read_csv(out / "stages/01_prune/layers.csv")}
    # int(c * 0.9) filters kept, the paper's rounding: 16 → 14, 32 → 28, 64 → 57
    assert layers["layer1.0.conv1"] == 14 and layers["layer2.1.conv1"] == 28 and layers["layer3.1.conv1"] == 57
    assert layers["layer1.7.conv1"] == 16 and layers["layer3.8.conv1"] == 64  # skipped as sensitive
    assert layers["layer1.0.conv2"] == 16 and layers["conv1"] == 16  # residual sums untouched


def test_the_sweep_reuses_one_cached_baseline_in_a_real_multirun(tmp_path: Path):
    env = {**os.environ, "COMPRESSBENCH_DATA_DIR": str(tmp_path / "data"),
           "COMPRESSBENCH_CACHE_DIR": str(tmp_path / "cache"), "HYDRA_FULL_ERROR": "0"}
    sweep = tmp_path / "sweep"
    proc = subprocess.run([sys.executable, "-m", "compressbench", "-m", "+experiment=resnet56_prune_sweep",
                           "model=resnet8", "dataset=synthetic", "dataset.in_channels=3", *TINY,
                           "prune.amount=0.3,0.9", f"hydra.sweep.dir={sweep}"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = pd.read_csv(sweep / "summary.csv")
    train, prune = summary[summary["stage"] == "train"], summary[summary["stage"] == "prune"]
    assert sorted(train["cache_hit"]) == [False, True] and train["stage_key"].nunique() == 1
    assert sorted(prune["achieved_sparsity"].round(3)) == [0.3, 0.9]


@pytest.mark.slow
def test_the_default_pruning_run_keeps_lenet5_above_95_percent(tmp_path: Path):
    """The full lenet5_prune run (about a minute on 2 cores): train, prune 80%, finetune, on digits."""
    env = {**os.environ, "COMPRESSBENCH_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, "-m", "compressbench", "+experiment=lenet5_prune",
                           "runtime.progress=false", f"hydra.run.dir={tmp_path / 'run'}"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = pd.read_csv(tmp_path / "run" / "results.csv").set_index("stage")
    assert rows.loc["prune", "achieved_sparsity"] == pytest.approx(0.8, abs=1e-3)
    assert rows.loc["finetune", "test_acc"] >= 95.0
    assert rows.loc["finetune", "nonzero_params"] == rows.loc["prune", "nonzero_params"]
