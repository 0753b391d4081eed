"""``train_module``, the way a stage trains: ``engine.fit`` on the stage's data with the pipeline's checkpoints,
under the one ``TrainConfig`` (``config.train``, re-exported here)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

from compressbench.config.train import TrainConfig
from compressbench.engine.loop import Callback, Criterion, Fitted, Precision, fit

if TYPE_CHECKING:
    from compressbench.engine.env import StageEnv

__all__ = ["TrainConfig", "train_module"]


def train_module(model: nn.Module, cfg: TrainConfig, env: StageEnv, criterion: Criterion | None = None,
                 callbacks: tuple[Callback, ...] = (), slot: str = "", return_index: bool = False,
                 precision: Precision | None = None) -> Fitted:
    """``engine.fit`` on ``env``'s data with the pipeline's checkpoint store: the one way stages train."""
    return fit(model, cfg, env.loaders(cfg.batch_size, cfg.augment, return_index),
               precision=precision or env.precision, checkpoint=env.checkpoint(slot), callbacks=callbacks,
               criterion=criterion, progress=env.progress, collective=env.collective, label=env.name)
