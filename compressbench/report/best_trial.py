"""Optuna's answer in a sweep's summary.md: the best trial (or each trial of its Pareto front) with the parameters
that acted on it and the command that runs that trial again.

Optuna's ``optimization_results.yaml`` lists every searched parameter of a trial, also those of stages its chain
left out (``quantize.method`` in a trial whose ``chain`` has no quantize stage): they did nothing to its result.
Here they are dropped from the parameters and named in a note; the command keeps every override of the job, so it
composes the very config the trial ran with, as one run (``hydra.mode=RUN``), not a new search.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from compressbench.report.pareto_set import Job, jobs
from compressbench.report.points import run_command

RESULTS = "optimization_results.yaml"  # written by the Optuna sweeper when the search ends


def trials(results: Mapping[str, Any]) -> list[tuple[dict[str, Any], list[float]]]:
    """(params, values) of Optuna's best trial, or of each trial on its front (multi-objective)."""
    if "best_params" in results:
        return [(dict(results["best_params"] or {}), [results.get("best_value")])]
    return [(dict(s.get("params") or {}), list(s.get("values") or [])) for s in results.get("solutions") or []]


def inert(params: Mapping[str, Any], cfg: DictConfig | Mapping[str, Any]) -> dict[str, str]:
    """The params (name → why) that did nothing in a job with config ``cfg``: those of a stage node (a top-level
    node with a ``stage`` kind) that the job's chain does not run."""
    chain = [str(s) for s in cfg.get("chain") or []]
    out = {}
    for name in params:
        node = name.lstrip("+~").split(".")[0]
        value = cfg.get(node)
        if node not in chain and isinstance(value, (DictConfig, Mapping)) and "stage" in value:
            out[name] = f"stage {node} is not in the chain [{','.join(chain)}]"
    return out


def match(params: Mapping[str, Any], scored: Sequence[Job]) -> Job | None:
    """The finished job that ran with ``params`` (the sweeper passed each one as ``name=value``)."""
    tokens = {f"{k}={v}" for k, v in params.items()}
    return next((j for j in scored if j.state == "done" and tokens <= set(j.overrides)), None)


def section(root: str | Path) -> list[str]:
    """summary.md's section on Optuna's answer (nothing without ``optimization_results.yaml``)."""
    root = Path(root)
    path = root / RESULTS
    if not path.is_file():
        return []
    try:
        results = OmegaConf.to_container(OmegaConf.load(path))
    except (OSError, ValueError):
        return []
    found = trials(results) if isinstance(results, dict) else []
    if not found:
        return []
    scored = jobs(root)
    single = "best_params" in results
    lines = ["## Optuna's best trial" if single else "## Optuna's Pareto front", "",
             f"From `{RESULTS}`. Parameters of stages a trial's chain does not run did nothing to it and are left "
             "out; the command runs that trial again as one run.", ""]
    for params, values in found:
        job = match(params, scored)
        dropped = inert(params, OmegaConf.load(root / job.run_dir / "config.yaml")) if job else {}
        kept = " ".join(f"{k}={v}" for k, v in params.items() if k not in dropped)
        shown = ", ".join(f"{v:g}" if isinstance(v, (int, float)) else str(v) for v in values)
        lines.append(f"- job {job.run_dir if job else '? (no job folder ran with these parameters)'}: "
                     f"value {shown}; parameters `{kept}`")
        reasons: dict[str, list[str]] = {}
        for name, why in dropped.items():
            reasons.setdefault(why, []).append(f"{name}={params[name]}")
        lines += [f"- left out `{' '.join(names)}`: {why}" for why, names in reasons.items()]
        if job:  # flat bullets: the HTML page renders one level of list
            lines.append(f"- job {job.run_dir} again, as one run: `{run_command(list(job.overrides))}`")
    return [*lines, ""]
