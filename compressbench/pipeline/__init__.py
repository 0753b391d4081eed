"""The pipeline: ``validate`` a config into a plan, key the chain, and walk it — cache, stage, files, measurement,
row, report. The only code that writes cache entries, run-dir files and results rows."""
from compressbench.pipeline.runner import Pipeline, RunFailed, report_best_effort, run, stage_env

__all__ = ["Pipeline", "RunFailed", "report_best_effort", "run", "stage_env"]
