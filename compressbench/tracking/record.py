"""A finished run dir read into what every tracker logs: params, tags, metric points and files.

Trackers read the files the pipeline wrote (config.yaml, status.json, results.csv, stages/*/history.csv) rather
than the rows in memory, so a tracker logs exactly what the user finds in the run dir, for an ok run and a
failed one alike.
"""
from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from compressbench.infra.version import __version__
from compressbench.results import read_csv

# Numeric-looking columns that are names, not measurements (a hex id can be all digits, or parse as 1e5...).
NOT_METRICS = frozenset({"run_id", "seed", "stage_index", "git_sha", "stage_key", "epoch", "stage"})
# Files small and readable enough to log from every stage folder; the rest (checkpoints, exported models) only
# as ``stage_files`` says.
REPORT_SUFFIXES = frozenset({".csv", ".json", ".txt", ".md", ".yaml", ".html", ".png", ".svg"})
STAGE_FILES = ("none", "export", "all")


@dataclass(frozen=True)
class Point:
    """One metric value: ``key`` at ``step``."""

    key: str
    value: float
    step: int


@dataclass
class RunRecord:
    """What a tracker logs about one run (one sweep job).

    Attributes:
        experiment: the config's ``name``.
        run_dir: the run's folder (absolute).
        run_name: a short label: the run dir's name, or ``#<job> <overrides>`` for a sweep job.
        status: status.json's ``status`` (ok / failed / interrupted).
        params: the resolved config flattened to dotted keys; scalars as they are, lists as JSON text.
        tags: status, error, overrides, run_dir, sweep_dir, job_num, ... as strings.
        curves: ``<stage>/epoch/<column>`` per epoch of each stage's history.csv (step = epoch).
        stage_metrics: ``<stage>/<column>`` and ``chain/<column>`` of every numeric results field
            (step = stage_index), so ``chain/test_acc`` is one curve along the chain.
        final: ``chain/<column>`` → the last row's value (the chain's end, or where it stopped).
        rows: results.csv as read.
        summary: summary.md's text ("" if there is none).
        config_text: config.yaml's text.
    """

    experiment: str
    run_dir: Path
    run_name: str
    status: str
    params: dict[str, Any]
    tags: dict[str, str]
    curves: list[Point] = field(default_factory=list)
    stage_metrics: list[Point] = field(default_factory=list)
    final: dict[str, float] = field(default_factory=dict)
    rows: list[dict[str, str]] = field(default_factory=list)
    summary: str = ""
    config_text: str = ""


def read_run(cfg: DictConfig, run_dir: Path, job: dict[str, str] | None = None) -> RunRecord:
    """Read ``run_dir`` (written by ``runner.run`` with ``cfg``). ``job``: the Hydra job's sweep_dir, job_num,
    job_id and overrides when it is a sweep job (``hydra_job()``)."""
    run_dir = Path(run_dir).resolve()
    job = job or {}
    status = _json(run_dir / "status.json")
    rows = read_csv(run_dir / "results.csv") if (run_dir / "results.csv").is_file() else []
    config_path = run_dir / "config.yaml"
    config_text = config_path.read_text(encoding="utf-8") if config_path.is_file() else _yaml(cfg)
    config = OmegaConf.to_container(OmegaConf.create(config_text))
    overrides = status.get("overrides") or job.get("overrides", "")
    first = rows[0] if rows else {}
    tags = {"status": status.get("status", "unknown"), "overrides": overrides, "run_dir": str(run_dir),
            "config_hash": first.get("run_id", ""), "git_sha": first.get("git_sha", ""),
            "torch_version": first.get("torch_version", ""), "compressbench_version": __version__,
            "stage_status": " ".join(f"{r.get('stage')}={r.get('status')}" for r in rows),
            **{k: v for k, v in job.items() if k != "overrides"}}
    if status.get("error"):
        tags["error"] = status["error"]
    run_name = f"#{job['job_num']} {overrides}".strip() if "job_num" in job else run_dir.name
    summary = run_dir / "summary.md"
    record = RunRecord(experiment=str(cfg.get("name", "default")), run_dir=run_dir, run_name=run_name,
                       status=tags["status"], params=flatten(config), tags={k: str(v) for k, v in tags.items()},
                       rows=rows, summary=summary.read_text(encoding="utf-8") if summary.is_file() else "",
                       config_text=config_text)
    prefixes = stage_prefixes(rows)
    for index, row in enumerate(rows):
        step = stage_index(row, index)
        for column, value in numeric_fields(row).items():
            record.stage_metrics.append(Point(f"{prefixes[index]}/{column}", value, step))
            record.stage_metrics.append(Point(f"chain/{column}", value, step))
    if rows:
        record.final = {f"chain/{k}": v for k, v in numeric_fields(rows[-1]).items()}
    record.curves = curves(run_dir, rows)
    return record


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 0.1}}`` → ``{"train.lr": 0.1}``; lists become JSON text (one param, readable)."""
    if isinstance(node, dict) and node:
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(node, (list, tuple, dict)):
        return {prefix: json.dumps(node, default=str)}
    return {prefix: node}


def number(cell: Any) -> float | None:
    """A CSV cell as a finite float (True/False as 1/0), else None (empty, text, NaN, inf)."""
    if cell in ("True", "False"):
        return float(cell == "True")
    try:
        value = float(cell)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def numeric_fields(row: dict[str, str]) -> dict[str, float]:
    """The measurements in a row: its numeric cells but ids and positions."""
    out = {}
    for column, cell in row.items():
        value = None if column in NOT_METRICS else number(cell)
        if value is not None:
            out[column] = value
    return out


def stage_index(row: dict[str, str], position: int) -> int:
    """The row's ``stage_index`` (its position in results.csv if the cell is missing)."""
    cell = str(row.get("stage_index", ""))
    return int(cell) if cell.isdigit() else position


def stage_prefixes(rows: list[dict[str, str]]) -> list[str]:
    """Each row's metric prefix: its stage name, or ``NN_name`` where the chain repeats a name."""
    counts = Counter(r.get("stage", "") for r in rows)
    return [r.get("stage", "") if counts[r.get("stage", "")] == 1 else f"{i:02d}_{r.get('stage', '')}"
            for i, r in enumerate(rows)]


def stage_dirs(run_dir: Path) -> list[tuple[int, str, Path]]:
    """``(stage_index, name, folder)`` of every ``stages/NN_<name>`` folder, in chain order."""
    out = []
    for folder in sorted((run_dir / "stages").glob("[0-9]*_*")):
        index, _, name = folder.name.partition("_")
        if folder.is_dir() and index.isdigit():
            out.append((int(index), name, folder))
    return out


def curves(run_dir: Path, rows: list[dict[str, str]]) -> list[Point]:
    """Every numeric column of each stage's history.csv as ``<stage>/epoch/<column>``.

    The step is the epoch; where a stage's epochs restart (iterative pruning retrains once per round) the step
    is the row's position instead, so the curve runs on rather than folding back on itself.
    """
    folders = stage_dirs(run_dir)
    names = Counter(name for _, name, _ in folders)
    points = []
    for _, name, folder in folders:
        path = folder / "history.csv"
        if not path.is_file():
            continue
        history = read_csv(path)
        epochs = [number(h.get("epoch")) for h in history]
        increasing = all(e is not None for e in epochs) and all(b > a for a, b in zip(epochs, epochs[1:], strict=False))
        prefix = name if names[name] == 1 else folder.name
        for position, h in enumerate(history, start=1):
            step = int(epochs[position - 1]) if increasing else position
            for column, value in numeric_fields(h).items():
                points.append(Point(f"{prefix}/epoch/{column}", value, step))
    return points


def artifact_files(record: RunRecord, stage_files: str) -> list[tuple[Path, str]]:
    """``(file, folder in the artifact store)`` of what to keep with the run: the run dir's own files
    (results.csv, summary.md, config.yaml, status.json, the job log), plots/, analysis/, and from each stage
    folder its small text files plus, by ``stage_files``, the export stages' files (``export``) or every file
    (``all``: checkpoints too)."""
    run_dir = record.run_dir
    kinds = {stage_index(r, i): r.get("kind", "") for i, r in enumerate(record.rows)}
    files = [(p, "") for p in sorted(run_dir.iterdir()) if p.is_file() and not p.name.startswith(".")]
    for p in sorted((run_dir / "plots").rglob("*")):
        if p.is_file():
            files.append((p, p.parent.relative_to(run_dir).as_posix()))
    folders = [(kinds.get(i, ""), folder) for i, _, folder in stage_dirs(run_dir)]
    folders += [("", folder) for folder in sorted((run_dir / "analysis").glob("*")) if folder.is_dir()]
    for kind, folder in folders:
        everything = stage_files == "all" or (stage_files == "export" and kind == "export")
        for p in sorted(folder.rglob("*")):
            if p.is_file() and (everything or p.suffix.lower() in REPORT_SUFFIXES):
                files.append((p, p.parent.relative_to(run_dir).as_posix()))
    return files


def hydra_job() -> dict[str, str]:
    """The sweep dir, job number, job id and overrides of the Hydra sweep job we run in; {} outside a sweep
    (a single run's folder already says which run it is)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return {}
    hc = HydraConfig.get()
    if hc.mode != RunMode.MULTIRUN:
        return {}
    return {"sweep_dir": str(Path(hc.sweep.dir).resolve()), "job_num": str(hc.job.num),
            "job_id": str(hc.job.get("id", "")), "overrides": " ".join(hc.overrides.task)}


def _json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _yaml(cfg: DictConfig) -> str:
    """The config as YAML, resolved where it can be (a run that failed before writing config.yaml)."""
    try:
        return OmegaConf.to_yaml(cfg, resolve=True)
    except Exception:  # noqa: BLE001 — an interpolation that only resolves inside Hydra: keep it as written
        return OmegaConf.to_yaml(cfg)
