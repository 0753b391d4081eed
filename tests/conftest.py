"""Shared fixtures: compose the real config (as the CLI does) with every output under tmp_path."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

import compressbench.stages  # noqa: F401  (registers stage configs with Hydra before composing)
from compressbench.config import conf_dir

# Tiny and quick: synthetic data, LeNet-5, two short stages, light timing.
FAST = [
    "chain=[train,finetune]",  # the core's own tests; the default chain is tested by test_default_run.py
    "dataset=synthetic",
    "train.epochs=2",
    "train.batch_size=16",
    "finetune.epochs=1",
    "finetune.batch_size=16",
    "measure.warmup=1",
    "measure.iters=3",
    "measure.rounds=2",
    "measure.min_time_s=0",  # no minimum timed span: tests time nothing they compare
    "measure.fp32_routes=[eager,onnxruntime]",  # an fp32 model is built on each route: no compile per test
    # fp32 training: on 8x8 images at batch 16 bf16 autocast costs more than it saves (about 10% of these tests'
    # time); the auto route has its own tests (test_train_route.py) and runs in test_default_run/compare_all.
    "runtime.amp=off",
    "runtime.progress=false",
]


@pytest.fixture
def make_cfg(tmp_path: Path) -> Callable[..., DictConfig]:
    """``make_cfg(*overrides)`` → the composed config, data/cache under tmp_path."""

    def make(*overrides: str, fast: bool = True) -> DictConfig:
        base = [f"paths.data_dir={tmp_path / 'data'}", f"paths.cache_dir={tmp_path / 'cache'}"]
        with initialize_config_dir(config_dir=str(conf_dir()), version_base=None):
            return compose("config", overrides=[*base, *(FAST if fast else []), *overrides])

    return make
