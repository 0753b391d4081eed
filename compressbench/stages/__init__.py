"""The STAGES registry. A stage is a plain function ``stage(model, cfg, ctx) -> nn.Module``.

``register_stage(kind, config)`` adds the function under ``kind`` and stores its typed config in Hydra's
ConfigStore as ``stage/<kind>``, so YAML can place it anywhere: ``- stage@finetune: train``. Every module in
this package is imported on first use, so a new stage is one new file.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hydra.core.config_store import ConfigStore

from compressbench.config import StageConfig
from compressbench.registry import Registry

if TYPE_CHECKING:
    from torch import nn

    from compressbench.context import RunContext

StageFn = Callable[["nn.Module", StageConfig, "RunContext"], "nn.Module"]


@dataclass(frozen=True)
class StageSpec:
    fn: StageFn
    config: type[StageConfig]
    cacheable: bool = True  # its output model can be pickled into the stage cache
    distributed: bool = False  # runs on every rank under torchrun (training); else on rank 0 only


STAGES: Registry[StageSpec] = Registry("stage")


def register_stage(kind: str, config: type[StageConfig], cacheable: bool = True,
                   distributed: bool = False) -> Callable[[StageFn], StageFn]:
    """Decorator registering a stage function and its config dataclass under ``kind``.

    ``distributed=True`` for stages that train through ``engine.fit``: under torchrun they run on every rank
    with DistributedDataParallel. Other stages run on rank 0 while the other ranks wait.
    """

    def add(fn: StageFn) -> StageFn:
        STAGES.register(kind)(StageSpec(fn, config, cacheable, distributed))
        ConfigStore.instance().store(group="stage", name=kind, node=config)
        return fn

    return add


def _import_all() -> None:
    """Import every module of this package once, so each registers its stage kinds (no list to keep)."""
    import importlib
    import pkgutil

    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")


_import_all()
