"""Experiment trackers (``logger=mlflow`` / ``logger=tensorboard``): a finished run dir, logged to a tracker.

A tracker reads what the pipeline already wrote (config.yaml, results.csv, each stage's history.csv, plots,
exported files), so it sees exactly what the user sees and never changes a result. ``logger: none`` (the
default) logs nothing.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any


def check_logger(node: Any) -> None:
    """Config check of the ``logger`` node, run by ``validate`` before any work."""


def track_run(cfg: Any, run_dir: Path) -> None:
    """Log the run in ``run_dir`` to the tracker ``cfg.logger`` names (nothing for ``none``)."""
