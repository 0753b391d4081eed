"""One small chain for every tracker test: data and stage cache shared by the session, so each module's own
run (same chain, another logger) loads its stages from the cache instead of training again."""
from __future__ import annotations

from collections.abc import Callable

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

import compressbench.stages  # noqa: F401  (registers stage configs with Hydra before composing)
from compressbench.config import conf_dir

# Two trainings (curves with several epochs) and an export (artifacts to log); fast light timing.
CHAIN = ["chain=[train,finetune,export]", "dataset=synthetic", "train.epochs=3", "train.batch_size=32",
         "finetune.epochs=2", "finetune.batch_size=32", "export.verify=false", "measure.warmup=1",
         "measure.iters=2", "measure.rounds=2", "measure.min_time_s=0",
         "measure.fp32_routes=[eager,onnxruntime]", "runtime.progress=false"]


@pytest.fixture(scope="session")
def tracking_cfg(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., DictConfig]:
    """``tracking_cfg(*overrides)`` → the composed config of the shared chain, data and cache in one session
    folder."""
    shared = tmp_path_factory.mktemp("tracking-shared")

    def make(*overrides: str) -> DictConfig:
        base = [f"paths.data_dir={shared / 'data'}", f"paths.cache_dir={shared / 'cache'}", *CHAIN]
        with initialize_config_dir(config_dir=str(conf_dir()), version_base=None):
            return compose("config", overrides=[*base, *overrides])

    return make

