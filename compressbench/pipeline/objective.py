"""The value a Hydra sweeper (Optuna) optimizes: what ``main`` returns for one job's rows.

The config's ``objective:`` node says which columns of which stage's row, in which direction, under which
constraints (``compressbench.results.objective``). One metric gives a float, several a tuple, in the order of
``objective.metrics`` — the order of ``hydra.sweeper.direction``, which the hparams_search configs derive from
the metrics (``${cb_directions:${objective.metrics}}``) so the two cannot disagree.

An infeasible job (a constraint broken, its stage unsupported or missing, no rows) returns the worst value of
each direction (``results.objective.WORST``, finite): Optuna records a COMPLETE trial its sampler learns to
avoid, and the study never ends with nothing to report. A job whose stage *fails* raises (Hydra's job status
says so); the Optuna sweeper records that as a FAIL trial, which the hparams_search configs tolerate with
``max_failure_rate: 1.0``.
"""
from __future__ import annotations

import logging
from typing import Any

from omegaconf import OmegaConf

from compressbench.config import BadValue
from compressbench.results.objective import ObjectiveConfig, check_stage, evaluate

log = logging.getLogger(__name__)


def objective_of(cfg: Any) -> ObjectiveConfig:
    """The parsed ``objective`` node of ``cfg`` (BadValue naming the key when it is wrong)."""
    return ObjectiveConfig.from_node(cfg.get("objective"))


def check_objective(cfg: Any) -> ObjectiveConfig:
    """Every objective check before any work (called by ``plan.validate``): metrics, directions, constraints,
    the stage, and — in an Optuna sweep — that ``hydra.sweeper.direction`` has one direction per metric."""
    objective = objective_of(cfg)
    check_stage(objective, [str(s) for s in cfg.get("chain") or []])
    sweeper = _optuna_sweeper()
    if sweeper is not None:
        direction = sweeper.get("direction")
        given = [str(d).split(".")[-1] for d in (direction if isinstance(direction, (list, tuple)) or
                                                 OmegaConf.is_list(direction) else [direction])]
        if given != objective.directions:
            raise BadValue("hydra.sweeper.direction", given,
                           f"{objective.directions} to match objective.metrics {[str(m) for m in objective.parsed]}; "
                           "leave it out (the hparams_search configs derive it) or set both")
    return objective


def _optuna_sweeper() -> Any:
    """The job's Optuna sweeper config, or None outside an Optuna sweep (a plain run, the Python API)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    sweeper = HydraConfig.get().get("sweeper")
    return sweeper if sweeper is not None and "optuna" in str(sweeper.get("_target_", "")).lower() else None


def sweep_objective(rows: list[dict[str, Any]], objective: ObjectiveConfig,
                    chain: list[str]) -> float | tuple[float, ...]:
    """The objective's value(s) for one job's ``rows`` (``Plan.objective`` of ``Plan.chain``): a float for one
    metric, a tuple for several; the worst value of each direction when the job is infeasible."""
    result = evaluate(rows, objective, chain)
    values = result.values
    if values is None:
        log.info("objective: infeasible (%s); the sweeper gets the worst value of each direction", result.reason)
        values = objective.worst
    else:
        log.info("objective %s = %s", objective.describe(), ", ".join(f"{v:g}" for v in values))
    return values[0] if len(values) == 1 else tuple(values)


def directions(metrics: Any) -> list[str]:
    """``${cb_directions:${objective.metrics}}``: Optuna's direction per metric (``hydra.sweeper.direction``)."""
    specs = OmegaConf.to_container(metrics) if OmegaConf.is_list(metrics) else metrics
    return ObjectiveConfig.from_node({"metrics": specs}).directions


# Registered on import: ``__main__`` imports this module before Hydra instantiates the sweeper.
OmegaConf.register_new_resolver("cb_directions", directions, replace=True)
