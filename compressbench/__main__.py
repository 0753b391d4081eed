"""``python -m compressbench [overrides]``: compose the config, run the chain, return the sweep objective."""
from __future__ import annotations

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from compressbench import runner
from compressbench.config import conf_dir
from compressbench.report import write_report


@hydra.main(version_base=None, config_path=str(conf_dir()), config_name="config")
def main(cfg: DictConfig) -> float | None:
    hc = HydraConfig.get()
    try:
        rows = runner.run(cfg, Path(hc.runtime.output_dir), list(hc.overrides.task))
    finally:
        if hc.mode == RunMode.MULTIRUN:
            # Every job refreshes the sweep's summary: the last one to finish leaves it complete, even when
            # another job failed (Hydra skips on_multirun_end then).
            write_report(Path(hc.sweep.dir))
    return rows[-1].get("test_acc") if rows else None


if __name__ == "__main__":
    main()
