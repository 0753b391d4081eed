"""RunContext: what a stage may use besides its model and config — device, data, output dir, reference."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from torch import nn
from tqdm.auto import tqdm

from compressbench import distributed
from compressbench.config import Plan
from compressbench.data import DataBundle
from compressbench.data.tensors import TensorLoader
from compressbench.engine import Precision


@dataclass
class Reference:
    """The baseline every ratio is taken against: a stage's output model and its metrics."""

    stage: str
    model: nn.Module
    metrics: dict[str, Any] | None = None


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"runtime.device={name} but CUDA is not available here; use runtime.device=auto or cpu")
    return device


class RunContext:
    """Shared state of one run. Stages read it and report extra row fields through ``record``."""

    def __init__(self, cfg: DictConfig, plan: Plan, run_dir: Path, data: DataBundle) -> None:
        self.cfg = cfg
        self.plan = plan
        self.run_dir = run_dir
        self.data = data
        self.dist = distributed.from_env()
        self.device = distributed.device_for(self.dist, resolve_device(plan.runtime.device))
        self.precision = Precision.for_device(self.device, plan.runtime.amp)
        cl = str(plan.runtime.channels_last).lower()
        self.channels_last = cl == "true" or (cl == "auto" and self.device.type == "cuda")
        self.reference: Reference | None = None
        self.stage_name = ""
        self.stage_index = -1
        self.stage_seed = plan.runtime.seed
        self._stage_dir = run_dir / "stages"
        self.stage_key = ""
        self.resume_file: Path | None = None
        self.collective = False  # this stage runs on every torchrun rank (data-parallel training)
        self.history: list[dict[str, Any]] = []
        self.info: dict[str, Any] = {}
        self._eval_loaders: dict[tuple, TensorLoader] = {}

    def begin_stage(self, index: int, name: str, seed: int, directory: Path | None = None, key: str = "",
                    collective: bool = False) -> None:
        """Start stage ``name``; ``key`` is its cache key; ``collective`` says every torchrun rank runs it.
        The runner then sets ``resume_file``, where the stage's training state goes."""
        self.stage_index, self.stage_name, self.stage_seed = index, name, seed
        self.stage_key, self.resume_file = key, None
        self.collective = collective and self.dist.enabled
        self.history, self.info = [], {}
        self._stage_dir = directory or self.run_dir / "stages" / f"{index:02d}_{name}"

    @property
    def stage_dir(self) -> Path:
        """Where the current stage writes its files (checkpoints, history)."""
        self._stage_dir.mkdir(parents=True, exist_ok=True)
        return self._stage_dir

    def record(self, **fields: Any) -> None:
        """Add stage-specific fields to this stage's results row (and to its cache entry)."""
        self.info.update(fields)

    def train_loader(self, batch_size: int, augment: bool = True, return_index: bool = False) -> TensorLoader:
        split = self.data.train
        ranks = self.dist.world_size if self.collective else 1  # a stage on rank 0 alone sees the whole split
        return TensorLoader(split, batch_size, mean=self.data.mean, std=self.data.std, shuffle=True,
                            augment=self.data.augment if augment else None,
                            # A last batch of one sample breaks BatchNorm in train mode; drop the ragged end.
                            drop_last=len(split) > batch_size * ranks, device=self.device,
                            seed=self.stage_seed, rank=self.dist.rank if self.collective else 0, world_size=ranks,
                            channels_last=self.channels_last, return_index=return_index)

    def eval_loader(self, split: str, device: torch.device | None = None,
                    batch_size: int | None = None) -> TensorLoader:
        device = device or self.device
        batch_size = batch_size or self.plan.measure.eval_batch_size
        key = (split, str(device), batch_size)
        if key not in self._eval_loaders:
            self._eval_loaders[key] = TensorLoader(getattr(self.data, split), batch_size, mean=self.data.mean,
                                                   std=self.data.std, device=device,
                                                   channels_last=self.channels_last and device.type == "cuda")
        return self._eval_loaders[key]

    def example_batch(self, n: int, device: torch.device | None = None) -> torch.Tensor:
        """``n`` real, normalised test images (repeated if the split is smaller) for timing and tracing."""
        x, _ = next(iter(self.eval_loader("test", device=device)))
        if len(x) < n:
            x = x.repeat((n + len(x) - 1) // len(x), 1, 1, 1)
        return x[:n].clone()  # keeps the loader's memory format (channels-last on CUDA, like the model's weights)

    def progress(self, iterable: Any = None, **kwargs: Any) -> tqdm:
        show = self.plan.runtime.progress and self.dist.is_main
        return tqdm(iterable, disable=not show, dynamic_ncols=True, **kwargs)
