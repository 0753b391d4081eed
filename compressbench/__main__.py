"""``python -m compressbench [overrides]``: compose the config, run the chain, return the sweep objective."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, open_dict

from compressbench.config import conf_dir
from compressbench.pipeline import runner
from compressbench.pipeline.runner import report_best_effort


def budget_threads(cfg: DictConfig, hc: Any) -> None:
    """Parallel sweep jobs share the cores: give each ``cores // jobs`` threads (jobs × threads ≤ cores)
    unless the user set ``runtime.threads``. The number used is recorded in every row (``train_threads``)."""
    launcher = str(hc.launcher.get("_target_", ""))
    if hc.mode != RunMode.MULTIRUN or "joblib" not in launcher.lower() or cfg.runtime.threads is not None:
        return
    cores = os.cpu_count() or 1
    jobs = hc.launcher.get("n_jobs") or 1
    jobs = cores if jobs < 0 else jobs
    with open_dict(cfg):
        cfg.runtime.threads = max(1, cores // jobs)


@hydra.main(version_base=None, config_path=str(conf_dir()), config_name="config")
def main(cfg: DictConfig) -> float | None:
    hc = HydraConfig.get()
    budget_threads(cfg, hc)
    try:
        rows = runner.run(cfg, Path(hc.runtime.output_dir), list(hc.overrides.task))
    finally:
        if hc.mode == RunMode.MULTIRUN:
            # Every job refreshes the sweep's summary: the last one to finish leaves it complete, even when
            # another job failed (Hydra skips on_multirun_end then).
            report_best_effort(Path(hc.sweep.dir))
    return rows[-1].get("test_acc") if rows else None


def cli() -> None:
    """The ``compressbench`` console script. ``main`` returns the sweep objective (a float), which must not
    become the process's exit status."""
    main()


if __name__ == "__main__":
    cli()
