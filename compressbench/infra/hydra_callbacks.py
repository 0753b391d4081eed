"""Hydra callbacks (``hydra.callbacks`` in conf/config.yaml): checks Hydra itself needs before it writes.

Hydra creates the run dir and writes ``.hydra/`` and the job log before our task function starts; a read-only
or misplaced run dir would fail inside Hydra with a raw ``OSError``. The check here runs first and fails with one
line that names the key to change. Hydra turns a callback's exception into a warning and goes on, so the check
ends the process itself (``SystemExit`` is not an ``Exception``: Hydra lets it through).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from compressbench.infra.preflight import PreflightError, check_creatable

_SWEEPS: list[Path] = []  # sweeps this process launched (their report is drawn once, when they end)


def started_sweeps() -> list[Path]:
    """The sweep dirs this process launched, each once: taken from the list as they are returned."""
    taken = list(dict.fromkeys(_SWEEPS))
    _SWEEPS.clear()
    return taken


class OutputDirCheck(Callback):
    """The run dir (sweep dir in a multirun) can be created and written, before Hydra tries; a sweep's dir is
    remembered for its report."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config, "hydra.sweep.dir")
        directory = OmegaConf.select(config, "hydra.sweep.dir", default=None)
        if directory is not None:
            _SWEEPS.append(Path(str(directory)))

    @staticmethod
    def _check(config: DictConfig, key: str) -> None:
        try:
            directory = OmegaConf.select(config, key, throw_on_missing=True)
        except Exception:  # noqa: BLE001 — interpolations only Hydra can resolve later: it will report them
            return
        if directory is None:
            return
        try:
            check_creatable(Path(str(directory)), key)
        except PreflightError as e:
            print(f"compressbench: {e}", file=sys.stderr)
            raise SystemExit(1) from None
