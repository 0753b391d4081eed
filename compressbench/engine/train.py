"""``train_module``, the way a stage trains: ``engine.fit`` on the stage's data with the pipeline's checkpoints,
under the one ``TrainConfig`` (``config.train``, re-exported here)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

from compressbench.config.train import TrainConfig
from compressbench.engine.loop import Callback, Criterion, Fitted, fit
from compressbench.engine.route import TrainRoute

if TYPE_CHECKING:
    from compressbench.engine.env import StageEnv

__all__ = ["TrainConfig", "train_module"]


def train_module(model: nn.Module, cfg: TrainConfig, env: StageEnv, criterion: Criterion | None = None,
                 callbacks: tuple[Callback, ...] = (), slot: str = "", return_index: bool = False,
                 route: TrainRoute | None = None) -> Fitted:
    """``engine.fit`` on ``env``'s data with the pipeline's checkpoint store and training route (``env.route``
    unless ``route`` is given): the one way stages train."""
    route = route or env.route
    return fit(model, cfg, env.loaders(cfg.batch_size, cfg.augment, return_index, route.channels_last),
               precision=route.precision, checkpoint=env.checkpoint(slot), callbacks=callbacks,
               criterion=criterion, progress=env.progress, collective=env.collective, label=env.name,
               channels_last=route.channels_last, compile=route.compile)
