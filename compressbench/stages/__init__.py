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


STAGES: Registry[StageSpec] = Registry("stage")


def register_stage(kind: str, config: type[StageConfig], cacheable: bool = True) -> Callable[[StageFn], StageFn]:
    """Decorator registering a stage function and its config dataclass under ``kind``."""

    def add(fn: StageFn) -> StageFn:
        STAGES.register(kind)(StageSpec(fn, config, cacheable))
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
