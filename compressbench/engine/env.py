"""What a stage may read besides its input and config: ``StageEnv`` (read-only), and the two pipeline-owned
stores it may use, ``Checkpoint`` (a training's resumable state) and ``TensorMemo`` (derived tensors such as
precomputed teacher logits).

A stage never writes run-dir files, cache entries or rows: it returns them in its ``StageResult`` and the
pipeline writes them. The stores are the pipeline's own objects handed in, so a crash mid-training still
loses at most one epoch; everything they read is loaded with ``weights_only=True``.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from compressbench.config import Experiments
from compressbench.data import DataBundle
from compressbench.data.tensors import TensorLoader
from compressbench.engine.checkpoint import Checkpoint
from compressbench.engine.loop import Loaders, Precision
from compressbench.engine.route import TrainRoute
from compressbench.infra.atomic import atomic_torch_save
from compressbench.infra.distributed import Dist
from compressbench.infra.locks import file_lock
from compressbench.infra.progress import bar
from compressbench.measure import Baseline, Inputs
from compressbench.runtimes import Deployable

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from compressbench.config import Plan


class TensorMemo:
    """Derived tensors kept across runs under ``root`` (None: compute every time), one lock per key."""

    def __init__(self, root: Path | None) -> None:
        self.root = root

    def get(self, name: str, key: str, compute: Callable[[], torch.Tensor],
            valid: Callable[[torch.Tensor], bool]) -> tuple[torch.Tensor, bool]:
        """(the tensor, whether it came from disk); a missing, unreadable or invalid file is recomputed."""
        if self.root is None:
            return compute(), False
        path = self.root / name / f"{key}.pt"
        with file_lock(self.root / name / "locks" / f"{key}.lock", what=f"{name} {key[:12]}"):
            if path.is_file():
                try:
                    table = torch.load(path, map_location="cpu", weights_only=True)
                    if isinstance(table, torch.Tensor) and valid(table):
                        return table, True
                except Exception as e:  # noqa: BLE001 — a damaged file means: recompute it
                    log.warning("%s %s is unreadable (%s); recomputing", name, key[:12], e)
            table = compute()
            atomic_torch_save(table.detach().cpu(), path)
        return table, False


@dataclass(frozen=True)
class StageEnv:
    """Read-only facts a stage works with. Built by the pipeline for each stage."""

    name: str
    index: int
    key: str
    seed: int
    device: torch.device
    precision: Precision  # the training route's (``route.precision``), also for teacher logits
    channels_last: bool  # channels-last everywhere (CUDA): weights, training and evaluation batches
    route: TrainRoute  # how trainings run (engine/route.py)
    data: DataBundle
    plan: Plan
    dist: Dist
    collective: bool  # every torchrun rank runs this stage (data-parallel training)
    reference: Baseline | None
    resume_dir: Path | None  # where this stage's trainings keep their resume state (its cache entry)
    history_dir: Path | None  # where per-epoch history.csv goes while training (the run's stage folder)
    lookup: Callable[[str], Deployable | None]  # an earlier stage of this chain, from the cache
    lookup_key: Callable[[str], Deployable | None]  # any cache key's artifact (another experiment's stage)
    experiments: Experiments  # other experiments, composed and keyed as the pipeline does
    memo: TensorMemo
    progress_on: bool = True
    _loaders: dict[tuple, TensorLoader] = field(default_factory=dict, repr=False, compare=False)

    def checkpoint(self, slot: str = "") -> Checkpoint:
        """The store for one training inside this stage (``slot`` tells several apart: ``round2_``)."""
        path = self.resume_dir / f"{slot}resume.pt" if self.resume_dir is not None else None
        return Checkpoint(path, self.key + slot, self.history_dir, self.dist.is_main, f"{self.name} {slot}".strip())

    def train_loader(self, batch_size: int, augment: bool = True, return_index: bool = False,
                     channels_last: bool = False) -> TensorLoader:
        split = self.data.train
        ranks = self.dist.world_size if self.collective else 1  # a stage on rank 0 alone sees the whole split
        return TensorLoader(split, batch_size, mean=self.data.mean, std=self.data.std, shuffle=True,
                            augment=self.data.augment if augment else None,
                            # A last batch of one sample breaks BatchNorm in train mode; drop the ragged end.
                            drop_last=len(split) > batch_size * ranks, device=self.device,
                            seed=self.seed, rank=self.dist.rank if self.collective else 0, world_size=ranks,
                            channels_last=self.channels_last or channels_last, return_index=return_index)

    def eval_loader(self, split: str, device: torch.device | None = None,
                    batch_size: int | None = None) -> TensorLoader:
        device = device or self.device
        batch_size = batch_size or self.plan.measure.eval_batch_size
        key = (split, str(device), batch_size)
        if key not in self._loaders:
            self._loaders[key] = TensorLoader(getattr(self.data, split), batch_size, mean=self.data.mean,
                                              std=self.data.std, device=device,
                                              channels_last=self.channels_last and device.type == "cuda")
        return self._loaders[key]

    def loaders(self, batch_size: int, augment: bool = True, return_index: bool = False,
                channels_last: bool = False) -> Loaders:
        """Shuffled (augmented) training batches and the validation batches, for ``engine.fit``."""
        return Loaders(self.train_loader(batch_size, augment, return_index, channels_last), self.eval_loader("val"))

    def example_batch(self, n: int, device: torch.device | None = None) -> torch.Tensor:
        """``n`` real, normalised test images (repeated if the split is smaller) for timing and tracing."""
        x, _ = next(iter(self.eval_loader("test", device=device)))
        if len(x) < n:
            x = x.repeat((n + len(x) - 1) // len(x), 1, 1, 1)
        return x[:n].clone()  # keeps the loader's memory format (channels-last on CUDA, like the model's weights)

    def measure_inputs(self, fp32_routes: list[str] | tuple[str, ...] = ()) -> Inputs:
        """What ``measure`` reads, from this stage's data and settings."""
        return Inputs(examples=self.example_batch, batches=self.eval_loader, cfg=self.plan.measure,
                      num_classes=self.data.num_classes, train_threads=self.plan.runtime.threads,
                      baseline=self.reference, fp32_routes=tuple(fp32_routes))

    def progress(self, iterable: Any = None, **kwargs: Any) -> Any:
        return bar(iterable, enabled=self.progress_on and self.dist.is_main, **kwargs)
