"""The Pareto set of a sweep's jobs for the objective they were run with (summary.md, sweeps only).

Read back from the job folders (each one's ``config.yaml`` → ``objective`` and ``chain``, ``results.csv``,
``status.json``) and scored by ``results.objective.evaluate`` — the code behind the value each job returned to
the sweeper — so the table is Optuna's answer (``optimization_results.yaml``) with every job's overrides beside
it, and it can be regenerated from the files at any time. Jobs run with different objectives get a table each.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from compressbench.config import ConfigError
from compressbench.report.collect import JOB_STATES, _natural
from compressbench.report.tables import cell, fmt, human, pct
from compressbench.results import read_csv
from compressbench.results.objective import Evaluation, ObjectiveConfig, evaluate, metric_value, stored_size


@dataclass(frozen=True)
class Job:
    """One sweep job scored by its own objective."""

    run_dir: str  # relative to the sweep dir: Hydra's job number
    overrides: tuple[str, ...]
    objective: ObjectiveConfig
    result: Evaluation
    state: str  # done | in progress | failed (collect.JOB_STATES)


def jobs(root: str | Path) -> list[Job]:
    """Every job folder under ``root`` (a ``status.json`` beside a ``config.yaml``), scored; unreadable ones are
    left out (the summary's other sections list them)."""
    root = Path(root)
    out = []
    for status_path in sorted(root.rglob("status.json"), key=lambda p: _natural(str(p))):
        folder = status_path.parent
        try:
            status = json.loads(status_path.read_text())
            cfg = OmegaConf.load(folder / "config.yaml")
            objective = ObjectiveConfig.from_node(cfg.get("objective"))
            chain = [str(s) for s in cfg.get("chain") or []]
            rows = read_csv(folder / "results.csv") if (folder / "results.csv").is_file() else []
        except (OSError, ValueError, ConfigError, AttributeError):
            continue  # no config.yaml: it failed before its first file, and the jobs section lists it
        state = JOB_STATES.get(str(status.get("status")), "failed")
        job_status = {"done": "ok", "in progress": "running"}.get(state, str(status.get("status")))
        out.append(Job(str(folder.relative_to(root)) if folder != root else ".",
                       tuple(str(status.get("overrides") or "").split()), objective,
                       evaluate(rows, objective, chain, job_status), state))
    return out


def dominates(a: Sequence[float], b: Sequence[float], objective: ObjectiveConfig) -> bool:
    """``a`` is at least as good as ``b`` on every metric and better on one (Optuna's definition)."""
    signs = [1.0 if m.direction == "max" else -1.0 for m in objective.parsed]
    at_least = all(s * x >= s * y for s, x, y in zip(signs, a, b, strict=True))
    return at_least and any(s * x > s * y for s, x, y in zip(signs, a, b, strict=True))


def front(scored: Sequence[Job]) -> list[Job]:
    """The feasible jobs no other feasible job dominates (ties all stay, as in Optuna's ``best_trials``)."""
    ok = [j for j in scored if j.result.values is not None]
    return [j for j in ok if not any(dominates(o.result.values, j.result.values, j.objective)  # type: ignore[arg-type]
                                     for o in ok if o is not j)]


def _value(column: str, value: float | None, job: Job) -> str:
    if value is None:
        return ""
    if column == "size_bytes":
        flavour = stored_size(job.result.row or {})[1]
        return f"{human(value, 'B')} ({'encoded' if flavour == 'encoded_bytes' else 'artifact'})"
    if column.endswith("_bytes") or column in ("params", "nonzero_params", "macs", "effective_macs"):
        return human(value, "B" if column.endswith("_bytes") else "")
    return pct(value, 2) if column in ("test_acc", "val_acc", "test_top5") else fmt(value)


def section(root: str | Path) -> list[str]:
    """The summary.md section: for each objective, the Pareto set (feasible, non-dominated jobs) with the
    overrides that differ between jobs and the metric values; infeasible jobs counted with their reasons.
    Nothing for a single run (one job is no search)."""
    scored = [j for j in jobs(root) if j.state != "in progress"]
    if len(scored) < 2:
        return []
    lines: list[str] = []
    groups: dict[str, list[Job]] = {}
    for job in scored:
        groups.setdefault(job.objective.describe(), []).append(job)
    for name, group in groups.items():
        common = set.intersection(*(set(j.overrides) for j in group))
        best = sorted(front(group), key=lambda j: tuple(-v if m.direction == "max" else v  # best first
                                                         for m, v in zip(j.objective.parsed, j.result.values or (),
                                                                         strict=True)))
        infeasible = [j for j in group if j.result.values is None]
        lines += [f"## Pareto set of the sweep: {name}", "",
                  f"{len(group)} jobs: {len(best)} in the Pareto set (feasible, and no other feasible job is as "
                  f"good on every metric and better on one), {len(infeasible)} infeasible or failed (Optuna "
                  "was told the worst value of each direction for an infeasible job; a failed one is a failed "
                  "trial)."
                  + (f" Every job had `{' '.join(sorted(common))}`." if common else ""), ""]
        metrics = group[0].objective.parsed
        bounded = list(dict.fromkeys(c.column for c in group[0].objective.limits  # what the constraints read
                                     if c.column not in {m.column for m in metrics}))
        header = ["job", "overrides", *(str(m) for m in metrics), *bounded, "stage"]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for job in best:
            changed = " ".join(o for o in job.overrides if o not in common)
            values = [_value(m.column, v, job) for m, v in zip(metrics, job.result.values or (), strict=True)]
            values += [_value(c, metric_value(job.result.row or {}, c), job) for c in bounded]
            stage = str((job.result.row or {}).get("stage", ""))
            lines.append("| " + " | ".join(cell(c) for c in [job.run_dir, f"`{changed}`" if changed else "",
                                                               *values, stage]) + " |")
        if not best:
            lines.append("| none feasible |" + " |" * (len(header) - 1))
        reasons: dict[str, list[str]] = {}
        for job in infeasible:
            reasons.setdefault(job.result.reason, []).append(job.run_dir)
        lines += [""] + [f"- infeasible, {why}: job{'s' if len(dirs) > 1 else ''} {', '.join(dirs)}"
                         for why, dirs in reasons.items()] + ([""] if reasons else [])
        if (Path(root) / "optimization_results.yaml").is_file():
            lines += ["Optuna's own answer (written when the sweep ended): `optimization_results.yaml`, in the "
                      "next section with the command that runs a trial again.", ""]
    return lines
