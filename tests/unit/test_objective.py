"""The sweep objective: parsing and its errors, values, constraints, failed runs, and the stored-size rule."""
from __future__ import annotations

import pandas as pd
import pytest
from omegaconf import OmegaConf
from report_rows import row

from compressbench.config import ConfigError
from compressbench.pipeline import objective as pipeline_objective
from compressbench.pipeline.objective import check_objective, directions, objective_of, sweep_objective
from compressbench.report import build
from compressbench.results.objective import WORST, ObjectiveConfig, evaluate, stored_size

CHAIN = ["train", "prune", "finetune", "encode"]


def rows() -> list[dict]:
    return [row("r", 0, "train", "train", 97.0, 89541),
            row("r", 1, "prune", "prune", 80.0, 89541, encoded_bytes=30000.0),
            row("r", 2, "finetune", "train", 95.0, 89541, encoded_bytes=30000.0, speedup_vs_best_fp32=0.5),
            row("r", 3, "encode", "encode", 94.5, 89541, encoded_bytes=9000.0)]


def cfg(chain: list[str] = CHAIN, **objective) -> OmegaConf:
    return OmegaConf.create({"chain": chain, "objective": {"metrics": ["test_acc:max"], "constraints": [],
                                                           "stage": None, **objective}})


def objective_value(rows: list[dict], c: OmegaConf) -> float | tuple[float, ...]:
    """The sweeper's value from what validate puts in the plan: the parsed objective and the chain."""
    return sweep_objective(rows, objective_of(c), list(c.chain))


def test_default_objective_is_the_last_stages_accuracy():
    assert objective_value(rows(), cfg()) == 94.5
    assert isinstance(objective_value(rows(), cfg()), float)


def test_several_metrics_give_a_tuple_in_their_order_and_size_is_the_encoded_file_of_an_encode_stage():
    value = objective_value(rows(), cfg(metrics=["size_bytes:min", "test_acc:max"]))
    assert value == (9000.0, 94.5)  # size_bytes of the encode row is 89541; its verified file is 9000 bytes
    assert stored_size({"size_bytes": 35907, "encoded_bytes": ""}) == (35907.0, "size_bytes")
    assert stored_size({"size_bytes": "89541", "encoded_bytes": "9000.0"}) == (9000.0, "encoded_bytes")


def test_the_objectives_size_is_the_reports_size_of_every_row():
    table = build(pd.DataFrame(rows()))
    for r in table.to_dict("records"):
        assert stored_size(r)[0] == r["stored_bytes"]
        assert stored_size(r)[1] == r["stored_flavour"]


def test_a_chosen_stage_is_read_instead_of_the_last():
    assert objective_value(rows(), cfg(stage="finetune", metrics=["speedup_vs_best_fp32:max"])) == 0.5


def test_a_broken_constraint_gives_the_worst_value_of_each_direction():
    objective = cfg(metrics=["test_acc:max", "size_bytes:min"], constraints=["size_bytes<=8000"])
    assert objective_value(rows(), objective) == (-WORST, WORST)
    ok = cfg(metrics=["test_acc:max", "size_bytes:min"], constraints=["size_bytes<=9000", "test_acc>=90"])
    assert objective_value(rows(), ok) == (94.5, 9000.0)
    assert objective_value(rows(), cfg(constraints=["test_acc>95"])) == -WORST
    result = evaluate(rows(), ObjectiveConfig(constraints=["test_acc>95"]), CHAIN)
    assert not result.feasible and "test_acc>95" in result.reason


@pytest.mark.parametrize("case", ["no rows", "stage unsupported", "chain stopped early", "job failed",
                                  "metric missing"])
def test_failed_or_incomplete_runs_are_infeasible(case: str):
    r, objective, status = rows(), ObjectiveConfig(metrics=["size_bytes:min"]), "ok"
    if case == "no rows":
        r = []
    elif case == "stage unsupported":
        r[-1]["status"] = "unsupported"
    elif case == "chain stopped early":
        r = r[:2]
    elif case == "job failed":
        status = "failed"
    else:
        objective = ObjectiveConfig(metrics=["speedup_vs_best_fp32:max"])  # the encode row has none
    result = evaluate(r, objective, CHAIN, status)
    assert result.values is None and result.reason
    if status == "ok":  # a failed job raises before main returns; the rest reach the sweeper as its worst value
        assert objective_value(r, cfg(metrics=[str(m) for m in objective.parsed])) == objective.worst[0]


@pytest.mark.parametrize("node, message", [
    ({"metrics": ["acc:max"]}, "unknown metric 'acc'; did you mean test_acc?"),
    ({"metrics": ["test_acc:maximize"]}, "bad direction 'maximize' for test_acc: max or min"),
    ({"metrics": ["test_acc"]}, "column:max or column:min"),
    ({"metrics": []}, "a non-empty list"),
    ({"metrics": ["test_acc:max", "test_acc:min"]}, "each column once"),
    ({"constraints": ["size_bytes=<5"]}, "column<=number"),
    ({"constraints": ["size_byts<=5"]}, "did you mean size_bytes?"),
    ({"constraints": ["test_acc>=0.9"]}, "accuracies are percent: did you mean test_acc>=90?"),
    ({"metric": ["test_acc:max"]}, "objective.metric=.*did you mean objective.metrics?"),
])
def test_bad_objectives_say_what_is_wrong(node: dict, message: str):
    with pytest.raises(ConfigError, match=message) as info:
        ObjectiveConfig.from_node(node)
    assert str(info.value).startswith("objective.")


def test_validate_checks_the_objective_before_any_work(make_cfg):
    from compressbench.pipeline.plan import validate

    validate(make_cfg())  # the default objective is valid
    with pytest.raises(ConfigError, match="unknown metric 'acc'; did you mean test_acc"):
        validate(make_cfg("objective.metrics=[acc:max]"))
    with pytest.raises(ConfigError, match="objective.stage='prune'.*one of the chain's stages: train, finetune"):
        validate(make_cfg("objective.stage=prune"))  # FAST's chain is [train, finetune]
    with pytest.raises(ConfigError, match="bad direction"):
        validate(make_cfg("objective.metrics=[test_acc:max,size_bytes:smallest]"))


def test_directions_follow_the_metrics_and_a_mismatched_sweeper_is_refused(monkeypatch):
    assert directions(OmegaConf.create(["test_acc:max", "size_bytes:min"])) == ["maximize", "minimize"]
    sweeper = OmegaConf.create({"_target_": "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper",
                                "direction": "minimize"})  # the sweeper's own default: it would minimize accuracy
    monkeypatch.setattr(pipeline_objective, "_optuna_sweeper", lambda: sweeper)
    with pytest.raises(ConfigError, match=r"hydra.sweeper.direction=\['minimize'\].*\['maximize'\]"):
        check_objective(cfg())
    sweeper.direction = ["maximize"]
    check_objective(cfg())


def test_the_hparams_search_configs_compose_with_directions_from_their_metrics():
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    from hydra import compose, initialize_config_dir

    from compressbench.config import conf_dir
    from compressbench.pipeline.plan import validate

    with initialize_config_dir(config_dir=str(conf_dir()), version_base=None):
        single = compose("config", ["+hparams_search=prune_quant_optuna"], return_hydra_config=True)
        multi = compose("config", ["+hparams_search=prune_quant_pareto"], return_hydra_config=True)
        three = compose("config", ["+hparams_search=prune_quant_pareto",
                                   "objective.metrics=[test_acc:max,size_bytes:min,latency_ms_p50:min]"],
                        return_hydra_config=True)
    assert list(single.hydra.sweeper.direction) == ["maximize"]
    assert list(multi.hydra.sweeper.direction) == ["maximize", "minimize"]
    assert list(three.hydra.sweeper.direction) == ["maximize", "minimize", "minimize"]
    assert "optuna" in single.hydra.sweeper._target_.lower() and str(single.hydra.mode) == "RunMode.MULTIRUN"
    for composed in (single, multi):
        assert set(composed.hydra.sweeper.params) >= {"prune.amount", "chain"}
        job = OmegaConf.masked_copy(composed, [k for k in composed if k != "hydra"])
        validate(job)  # the search's fixed settings pass the checks every trial runs
