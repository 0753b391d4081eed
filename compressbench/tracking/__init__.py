"""Experiment trackers (``logger=mlflow`` / ``logger=tensorboard``): a finished run dir, logged to a tracker.

A tracker reads what the pipeline already wrote (config.yaml, results.csv, each stage's history.csv, plots,
exported files), so it sees exactly what the user sees and never changes a result. ``logger: none`` (the
default) logs nothing. A bad ``logger`` node fails in ``validate`` before any work; a tracker that fails after
the run only warns: every number is in the run dir already.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from compressbench.config import check
from compressbench.tracking import mlflow, tensorboard  # noqa: F401  (register)
from compressbench.tracking.base import TRACKERS, Tracker
from compressbench.tracking.record import RunRecord, hydra_job, read_run

log = logging.getLogger(__name__)


def _name(node: Any) -> str:
    return "none" if node is None else str(node.get("name", "none"))


def check_logger(node: Any) -> Any:
    """Config check of the ``logger`` node, run by ``validate`` before any work; returns the typed options.

    An unknown tracker, an unknown or bad key, and a tracker whose package is not installed fail here, saying
    what to do.
    """
    if node is None:  # a config composed without conf/logger (an old user config dir): nothing to log
        return None
    check(isinstance(node, (dict, DictConfig)) and "name" in node, "logger", node,
          f"a logger node with a name; choose one with logger=<name>: {', '.join(TRACKERS.names())}")
    name = _name(node)
    check(name in TRACKERS, "logger.name", name,
          f"one of {', '.join(TRACKERS.names())} (conf/logger/<name>.yaml; choose with logger=<name>)")
    tracker = TRACKERS.get(name)
    options = tracker.parse(node)
    check(tracker.available(), "logger", name, f"logger={name} needs its package, not installed here: "
          f"{tracker.install_hint} (or run with logger=none)")
    return options


def track_run(cfg: Any, run_dir: Path, options: Any = None) -> None:
    """Log the run in ``run_dir`` to the tracker ``cfg.logger`` names (nothing for ``none``), with ``options``:
    its typed options as validation parsed them (``Plan.logger``; None parses ``cfg.logger``). ``cfg`` is the
    composed config, whose values the record logs as the run's parameters.

    Called for a run that ended ok and for one that failed (its status is a tag). Never raises: a tracker
    problem is a warning, since results.csv and the report are complete without it.
    """
    name = _name(cfg.get("logger"))
    if name == "none":
        return
    try:
        tracker = TRACKERS.get(name)
        parsed = tracker.parse(cfg.logger) if options is None else options
        where = tracker.log(read_run(cfg, Path(run_dir), hydra_job()), parsed)
        log.info("logged to %s", where)
    except Exception as e:  # noqa: BLE001
        log.warning("logger=%s could not log the run in %s (%s: %s); the run itself is unaffected and its "
                    "results.csv, summary.md and plots are complete", name, run_dir, type(e).__name__, e)


__all__ = ["TRACKERS", "RunRecord", "Tracker", "check_logger", "read_run", "track_run"]
