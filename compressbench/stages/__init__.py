"""The STAGES registry. A stage is a plain function ``stage(artifact, cfg, env) -> StageResult``.

``artifact`` is the ``Deployable`` the previous stage handed on (the first stage gets the freshly built model
as an ``Eager``), ``cfg`` the stage's typed config and ``env`` the read-only ``StageEnv``. The stage returns
its output artifact, the fields to add to its results row, its training history and the files it made (name →
bytes); the pipeline writes all of them — rows, run-dir files and cache entries — so no stage has side effects
beyond its own return value (and the pipeline's checkpoint store it is handed for resuming a training).

``register_stage(kind, config)`` adds the function under ``kind`` and stores its typed config in Hydra's
ConfigStore as ``stage/<kind>``, so YAML can place it anywhere: ``- stage@finetune: train``. Every module in
this package is imported on first use, so a new stage is one new file.

A stage module imports no torch at load time: its config and what the config's checks read (``config``,
method registries such as ``techniques.pruning.criteria``, option names in ``techniques.*.choices``) at the
top, torch and the technique code inside the stage function. So Hydra composes, ``--help`` answers and a
config error is reported before torch is imported (``tests/e2e/test_fast_start.py`` holds every module to it).
The pipeline imports every technique module itself (``techniques.registered``), so what they register below them
is in place when every stage is a cache hit.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hydra.core.config_store import ConfigStore

from compressbench.config import StageConfig
from compressbench.infra.registry import Registry

if TYPE_CHECKING:
    from compressbench.engine.env import StageEnv
    from compressbench.runtimes import Deployable


@dataclass
class StageResult:
    """What a stage returns; the pipeline records, writes and caches it."""

    artifact: Deployable
    record: dict[str, Any] = field(default_factory=dict)  # extra results-row fields
    history: list[dict[str, Any]] = field(default_factory=list)  # per-epoch rows of the trainings it ran
    files: dict[str, bytes] = field(default_factory=dict)  # stage folder files: name → content


StageFn = Callable[["Deployable", StageConfig, "StageEnv"], StageResult]


@dataclass(frozen=True)
class StageSpec:
    fn: StageFn
    config: type[StageConfig]
    cacheable: bool = True  # its output is stored in the stage cache
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
