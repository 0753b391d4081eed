"""Data-parallel training across processes (``torchrun --nproc_per_node=N -m compressbench ...``).

Rank 0 owns everything that is written (run dir, results rows, cache entries, checkpoints); training stages
(train, finetune, distill) run on every rank with DistributedDataParallel, each rank seeing its shard of every
epoch; compression stages run on rank 0 while the others wait, then receive its model. Without torchrun's
environment (``WORLD_SIZE`` unset or 1) every helper here is a no-op.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as tdist
from torch import nn


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def from_env() -> Dist:
    """Read torchrun's variables and join the process group (gloo on CPU, nccl on CUDA) once."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    dist = Dist(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if not tdist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(dist.local_rank)
        tdist.init_process_group(backend)
    return dist


def device_for(dist: Dist, device: torch.device) -> torch.device:
    """Each rank drives its own GPU."""
    if dist.enabled and device.type == "cuda":
        return torch.device("cuda", dist.local_rank)
    return device


def broadcast(obj: Any, src: int = 0) -> Any:
    """``obj`` from rank ``src`` on every rank (pickled; models should be on the CPU)."""
    if not tdist.is_initialized():
        return obj
    box = [obj]
    tdist.broadcast_object_list(box, src=src)
    return box[0]


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank when ``flag`` is true on any (so all ranks stop together instead of hanging)."""
    if not tdist.is_initialized():
        return flag
    t = torch.tensor([1 if flag else 0], device=device if tdist.get_backend() == "nccl" else "cpu")
    tdist.all_reduce(t, op=tdist.ReduceOp.MAX)
    return bool(t.item())


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """DistributedDataParallel around ``model`` when running under torchrun, else ``model`` itself."""
    if not tdist.is_initialized():
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
