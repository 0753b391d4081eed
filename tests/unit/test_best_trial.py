"""Optuna's answer in a sweep summary, from fake trials (no search runs): only the parameters that acted on the best
trial, and a command that runs that trial again — one run, composing the trial's own config."""
from __future__ import annotations

import shlex
from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf
from report_rows import baseline, row, write_run

from compressbench.config import conf_dir
from compressbench.report import best_trial, points
from compressbench.report.summary import summary_markdown

pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")

SEARCH = "+hparams_search=prune_quant_optuna"
BEST = {"prune.amount": 0.7243, "quantize.method": "weight_bits", "quantize.weight_bits": 4,
        "chain": "[train,prune,finetune]"}  # a trial without a quantize stage: quantize.* did nothing
OTHER = {"prune.amount": 0.55, "quantize.method": "static_int8", "quantize.weight_bits": 8,
         "chain": "[train,prune,finetune,quantize]"}


def tokens(params: dict) -> list[str]:
    return [f"{k}={v}" for k, v in params.items()]  # how the Optuna sweeper passes a trial to its job


def composed(overrides: list[str]) -> DictConfig:
    with initialize_config_dir(config_dir=str(conf_dir()), version_base=None):
        return compose("config", overrides=overrides, return_hydra_config=True)


def job_config(cfg: DictConfig) -> dict:
    return OmegaConf.to_container(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]))


def search(root: Path) -> dict[str, dict]:
    """A finished search as the sweeper and the runner leave it: two job folders and optimization_results.yaml."""
    configs = {}
    for name, params, acc in (("0", BEST, 95.0), ("1", OTHER, 90.0)):
        overrides = " ".join([SEARCH, *tokens(params)])
        chain = params["chain"].strip("[]").split(",")
        rows = [baseline(f"r{name}", overrides=overrides)]
        rows += [row(f"r{name}", i, stage, stage.replace("finetune", "train"), acc, 30000, overrides=overrides)
                 for i, stage in enumerate(chain[1:], 1)]
        write_run(root, name, rows)
        configs[name] = job_config(composed([SEARCH, *tokens(params)]))
        OmegaConf.save(OmegaConf.create(configs[name]), root / name / "config.yaml")
    OmegaConf.save(OmegaConf.create({"name": "optuna", "best_params": BEST, "best_value": 95.0}),
                   root / best_trial.RESULTS)
    return configs


def test_best_params_keep_only_the_stages_of_the_best_trials_chain(tmp_path: Path):
    search(tmp_path)
    lines = best_trial.section(tmp_path)
    assert lines[0] == "## Optuna's best trial"
    best = next(line for line in lines if line.startswith("- job "))
    assert best == "- job 0: value 95; parameters `prune.amount=0.7243 chain=[train,prune,finetune]`"
    assert ("- left out `quantize.method=weight_bits quantize.weight_bits=4`: stage quantize is not in the chain "
            "[train,prune,finetune]") in lines
    # In a trial whose chain quantizes, the same parameters act and are kept.
    assert best_trial.inert(OTHER, OmegaConf.load(tmp_path / "1" / "config.yaml")) == {}
    md = summary_markdown(pd.DataFrame(), [], [], tmp_path, pd.DataFrame())
    assert "## Optuna's best trial" in md and best in md


def test_the_reproduce_command_is_one_run_that_composes_the_best_trials_config(tmp_path: Path):
    configs = search(tmp_path)
    line = next(line for line in best_trial.section(tmp_path) if "again, as one run" in line)
    argv = shlex.split(line.split("`")[1])
    assert argv[:3] == ["python", "-m", "compressbench"] and "-m" not in argv[3:]
    again = composed(argv[3:])
    assert str(again.hydra.mode) == "RunMode.RUN"  # one run of the trial, not a new search
    assert job_config(again) == configs["0"]
    # The deploy table's command for the trial's last row is the same one run.
    last = pd.Series({"overrides": " ".join([SEARCH, *tokens(BEST)]), "stage": "finetune", "seeds": "0"})
    deploy = shlex.split(points.command(last, ["train", "prune", "finetune"]))
    assert str(composed(deploy[3:]).hydra.mode) == "RunMode.RUN" and job_config(composed(deploy[3:])) == configs["0"]


def test_a_plain_sweeps_commands_are_unchanged():
    assert points.single_run(["prune.amount=0.5"]) == ["prune.amount=0.5"]
    assert points.single_run([SEARCH, "hydra.mode=RUN"]) == [SEARCH, "hydra.mode=RUN"]
