"""``run(cfg, run_dir)``: validate, load data, walk the chain (cache → stage → measure → row), report.

The pipeline owns every side effect: it builds each stage's read-only ``StageEnv``, calls the stage, writes what
the stage returned (its files, its history, its cache entry) and the results row. A stage only returns. By job:
``lifecycle`` (how a run begins and ends: status, errors, report, tracking), ``chain`` (the recipe, stage after
stage), ``stage`` (one stage: cache, env, files, measurement, row), ``measuring`` and ``process`` (threads, seeds).
"""
from __future__ import annotations

from compressbench.infra.version import __version__
from compressbench.pipeline.chain import RunFailed
from compressbench.pipeline.lifecycle import report_best_effort, run, write_status
from compressbench.pipeline.measuring import MeasureMemo, process_memo
from compressbench.pipeline.stage import Pipeline, stage_env

__all__ = ["MeasureMemo", "Pipeline", "RunFailed", "__version__", "process_memo", "report_best_effort", "run",
           "stage_env", "write_status"]
