"""The ``train`` stage kind (``finetune`` is a train stage with other defaults in YAML); its options are
``engine.train.TrainConfig``, shared with every technique that trains."""
from __future__ import annotations

from typing import TYPE_CHECKING

from compressbench.engine.train import TrainConfig, train_module
from compressbench.runtimes import Deployable, Eager, as_module
from compressbench.stages import StageResult, register_stage

if TYPE_CHECKING:
    from compressbench.engine.env import StageEnv

__all__ = ["TrainConfig", "train", "train_module"]


@register_stage("train", TrainConfig, distributed=True)
def train(artifact: Deployable, cfg: TrainConfig, env: StageEnv) -> StageResult:
    """Train (or finetune) the model on the dataset's train split; model selection on val."""
    fitted = train_module(as_module(artifact, env.name), cfg, env)
    return StageResult(Eager(fitted.model, artifact.arch, artifact.runtime), fitted.record, fitted.history)
