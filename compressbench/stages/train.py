"""The ``train`` stage kind (``finetune`` is a train stage with other defaults in YAML); its options are
``config.train.TrainConfig``, shared with every technique that trains."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from compressbench.config.train import TrainConfig
from compressbench.stages import StageResult, register_stage
from compressbench.stages.kind import FP32

if TYPE_CHECKING:
    from compressbench.engine.env import StageEnv
    from compressbench.runtimes import Deployable

__all__ = ["TrainConfig", "train"]


def keeps_names(opts: TrainConfig, incoming: dict[str, Any], exact: bool) -> tuple[dict[str, Any], bool]:
    """Training keeps the architecture and its layer names."""
    return incoming, exact


@register_stage("train", TrainConfig, distributed=True, needs_fp32=True, makes=FP32, does="trains fp32 weights",
                reference_candidate=True, output=keeps_names)
def train(artifact: Deployable, cfg: TrainConfig, env: StageEnv) -> StageResult:
    """Train (or finetune) the model on the dataset's train split; model selection on val."""
    from compressbench.engine.train import train_module
    from compressbench.runtimes import Eager, as_module

    fitted = train_module(as_module(artifact, env.name), cfg, env)
    return StageResult(Eager(fitted.model, artifact.arch, artifact.runtime), fitted.record, fitted.history)
