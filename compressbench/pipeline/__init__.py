"""The pipeline: ``validate`` a config into a plan, key the chain, and walk it — cache, stage, files, measurement,
row, report. The only code that writes cache entries, run-dir files and results rows.

``pipeline.plan`` (``precheck``, ``validate``) is importable without torch; the runner, which imports torch and
everything a run reaches (techniques, measurement, the report's matplotlib), loads on first use of a name below.
"""
from __future__ import annotations

import importlib
from typing import Any

__all__ = ["MeasureMemo", "Pipeline", "RunFailed", "process_memo", "report_best_effort", "run", "stage_env"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("compressbench.pipeline.runner"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
