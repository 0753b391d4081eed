"""The STAGES registry. A stage is a plain function ``stage(artifact, cfg, env) -> StageResult``.

``artifact`` is the ``Deployable`` the previous stage handed on (the first stage gets the freshly built model
as an ``Eager``), ``cfg`` the stage's typed config and ``env`` the read-only ``StageEnv``. The stage returns
its output artifact, the fields to add to its results row, its training history and the files it made (name →
bytes); the pipeline writes all of them — rows, run-dir files and cache entries — so no stage has side effects
beyond its own return value (and the pipeline's checkpoint store it is handed for resuming a training).

``register_stage(kind, config, **declared)`` adds the function as a ``StageKind`` (``stages/kind.py``: its flags,
its place in a chain and the hooks the pipeline calls) and stores its options dataclass in Hydra's ConfigStore as
``stage/<kind>``, so YAML can place it anywhere: ``- stage@finetune: train``. Every module in this package is
imported on first use, so a new stage kind is one new file.

A stage module imports no torch at load time: its config and what the config's checks read (``config``,
method registries such as ``techniques.pruning.criteria``, option names in ``techniques.*.choices``) at the
top, torch and the technique code inside the stage function. So Hydra composes, ``--help`` answers and a
config error is reported before torch is imported (``tests/e2e/test_fast_start.py`` holds every module to it).
The pipeline imports every technique module itself (``techniques.registered``), so what they register below them
is in place when every stage is a cache hit.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hydra.core.config_store import ConfigStore

from compressbench.config import StageConfig
from compressbench.infra.registry import Registry
from compressbench.stages.kind import StageFn, StageKind, StageResult

__all__ = ["STAGES", "StageFn", "StageKind", "StageResult", "register_stage"]


STAGES: Registry[StageKind] = Registry("stage")


def register_stage(kind: str, config: type[StageConfig], **declared: Any) -> Callable[[StageFn], StageFn]:
    """Decorator registering a stage function as the kind ``kind`` with its options dataclass ``config``.

    ``declared`` are the ``StageKind`` fields the kind sets: flags (``distributed=True`` for stages that train
    through ``engine.fit``: under torchrun they run on every rank with DistributedDataParallel; other stages run
    on rank 0 while the other ranks wait), its place in a chain and its hooks (``stages/kind.py``).
    """

    def add(fn: StageFn) -> StageFn:
        STAGES.register(kind)(StageKind(kind, fn, config, **declared))
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
