"""How a run begins and ends: ``run(cfg, run_dir)`` validates, reserves the run dir, walks the chain
(``pipeline.chain``) and ends the run — ``status.json`` (ok / failed / interrupted, with the error), the report,
the tracking, the one line a full disk or a missing dataset gets — so nothing is lost on a crash.
"""
from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from compressbench.config import ConfigError, Plan, resolve_path
from compressbench.data import check_dataset
from compressbench.infra import distributed, signals
from compressbench.infra.atomic import atomic_write_text
from compressbench.infra.preflight import (
    RUN_DIR_KEY,
    DataUnavailable,
    OutputError,
    Reserve,
    describe_output_error,
    ensure_writable,
    output_error_of,
)
from compressbench.pipeline.chain import RunFailed, walk
from compressbench.pipeline.measuring import MeasureMemo
from compressbench.pipeline.plan import validate
from compressbench.report import write_report
from compressbench.tracking import track_run

log = logging.getLogger("compressbench.pipeline.runner")  # the name its messages have always carried


def run(cfg: DictConfig, run_dir: str | Path, overrides: list[str] | tuple[str, ...] = (),
        plan: Plan | None = None, figures: bool = True, memo: MeasureMemo | None = None) -> list[dict[str, Any]]:
    """Run the chain in ``cfg``, writing everything under ``run_dir``; return the results rows.

    ``plan``: ``validate(cfg)`` when the caller has just made it (else it is made here). ``figures=False`` (a
    sweep's job: the sweep draws every job's points once, when it ends) writes the job's summary without plots.

    ``status.json`` in ``run_dir`` says how the job ended (ok / failed / interrupted, with the error), so a
    sweep summary lists jobs that failed before writing a single row. ``memo``: measurements of cache hits
    this process took already (a sweep's jobs share one; see ``MeasureMemo``); None = none.
    """
    plan = plan if plan is not None else validate(cfg)  # every config error here, before any folder or compute
    check_data(plan)  # and the data's folders, before the run dir is written to
    if not distributed.from_env().is_main:
        # Under torchrun rank 0 owns the run dir; the other ranks write their scratch elsewhere and drop it.
        scratch = Path(tempfile.mkdtemp(prefix="compressbench-rank-"))
        try:
            return walk(cfg, plan, scratch, overrides, memo)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    run_dir = Path(run_dir)
    fresh = untouched(run_dir)
    ensure_writable(run_dir, RUN_DIR_KEY)
    name = plan.name
    write_status(run_dir, "running", overrides, name)
    log.info("run dir: %s", run_dir.resolve())
    reserve = Reserve(run_dir)
    try:
        with signals.stop_requests():  # SIGINT and SIGTERM end the run here, as interrupted, with the files closed
            rows = walk(cfg, plan, run_dir, overrides, memo)
    except BaseException as e:
        if isinstance(e, ConfigError) and fresh:
            # Found on the data or the built model (a weights file that does not fit it, a layer name), before any
            # stage ran: like any config error it leaves no run folder (the CLI removes Hydra's part of it).
            reserve.release()
            for file in BEFORE_STAGES:
                (run_dir / file).unlink(missing_ok=True)
            _try(run_dir.rmdir)  # when empty: what the caller passed is gone again
            raise
        status = "failed" if isinstance(e, Exception) else "interrupted"
        written = output_error_of(e)
        if written is not None:  # a full or read-only disk: not a bug, and the rows so far are intact
            reserve.release()
            message = describe_output_error(written, output_places(plan, run_dir))
            ended = _try(write_status, run_dir, status, overrides, name, error=f"OutputError: {message}")
            _try(atomic_write_text, run_dir / "error.txt", traceback.format_exc())
            log.error("%s; run dir: %s%s", message, run_dir.resolve(),
                      "" if ended else " (status.json could not be updated either)")
            raise OutputError(message) from None
        write_status(run_dir, status, overrides, name, error=f"{type(e).__name__}: {e}")
        if isinstance(e, DataUnavailable):  # nothing ran: the command says why in one line (and drops the dir)
            raise
        if isinstance(e, RunFailed):  # its rows are written: the report shows how far it got
            report_best_effort(run_dir, figures)
        if isinstance(e, Exception):  # a failed run is tracked too (its status a tag); an interrupted one is not
            track_run(cfg, run_dir, plan.logger)
        log.info("%s; run dir: %s", status, run_dir.resolve())
        raise
    finally:
        reserve.release()
    # The status first: the report reads it, and must not list a finished run as still running.
    write_status(run_dir, "ok", overrides, name)
    report_best_effort(run_dir, figures)
    track_run(cfg, run_dir, plan.logger)
    log.info("done; results, summary.md and plots in %s", run_dir.resolve())
    return rows


def check_data(plan: Plan) -> None:
    """Raise DataUnavailable (one line: where to put the files, how to get them) when the dataset's folder or
    files are missing and cannot be downloaded. Lists folders only; a failed download is caught when it runs."""
    try:
        check_dataset(plan.dataset, resolve_path(plan.paths["data_dir"]))
    except (ValueError, FileNotFoundError) as e:
        raise DataUnavailable(str(e)) from None


# What ``run`` writes into the run dir before the first stage.
BEFORE_STAGES = ("status.json", "config.yaml", "split.json")


def untouched(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds nothing of a run yet (missing, or only Hydra's ``.hydra/`` and job log)."""
    return not run_dir.is_dir() or all(p.name == ".hydra" or p.suffix == ".log" for p in run_dir.iterdir())


def output_places(plan: Plan, run_dir: Path) -> list[tuple[Path, str]]:
    """Where a run writes, each with the key that moves it (for an error that says what to change)."""
    places = [(run_dir, RUN_DIR_KEY)]
    for key in ("cache_dir", "data_dir"):
        if plan.paths.get(key):
            places.append((resolve_path(plan.paths[key]), f"paths.{key}"))
    return places


def _try(write: Any, *args: Any, **kwargs: Any) -> bool:
    """Run a write whose failure must not hide the error being reported; say whether it worked."""
    try:
        write(*args, **kwargs)
        return True
    except OSError:
        return False


def write_status(run_dir: Path, status: str, overrides: Any, experiment: str, error: str | None = None) -> None:
    atomic_write_text(run_dir / "status.json", json.dumps(
        {"status": status, "experiment": experiment, "overrides": " ".join(overrides), "error": error,
         "time": time.strftime("%Y-%m-%dT%H:%M:%S")}, indent=1))


def report_best_effort(directory: Path, figures: bool = True) -> None:
    """Refresh a run's or sweep's report; a plotting problem is reported, never turned into a failed run (every
    measurement is already in results.csv, and ``python -m compressbench.report`` can redo it)."""
    try:
        write_report(directory, figures=figures)
    except Exception as e:  # noqa: BLE001
        log.warning("the report in %s could not be refreshed (%s: %s); results.csv is complete — run "
                    "python -m compressbench.report %s", directory, type(e).__name__, e, directory)
