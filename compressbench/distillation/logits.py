"""Teacher logits computed once for the whole train split (torchdistill's trick), looked up per batch by index.

Without augmentation a training image is the same tensor every epoch, so the teacher's answer is too: one
teacher pass over the train split replaces one per epoch, and a KD epoch costs about a plain student epoch.
The table is also kept on disk under ``<cache_dir>/teacher_logits/``, keyed by a hash of the teacher's weights,
the train images and the normalisation — so a sweep over temperatures or students computes it once.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from compressbench.atomic import atomic_torch_save
from compressbench.config import resolve_path
from compressbench.data.tensors import TensorLoader
from compressbench.locks import file_lock

if TYPE_CHECKING:
    from compressbench.context import RunContext


def weights_fingerprint(model: nn.Module) -> str | None:
    """sha256 of the model's class and state_dict (names, dtypes, shapes, bytes); None if not plain tensors."""
    h = hashlib.sha256(type(model).__qualname__.encode())
    try:
        for name, value in sorted(model.state_dict().items()):
            if not isinstance(value, torch.Tensor):
                return None
            t = value.detach().cpu().contiguous()
            h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    except (RuntimeError, TypeError):  # quantized or otherwise packed tensors: no byte view
        return None
    return h.hexdigest()


def _table_key(teacher_print: str, ctx: RunContext) -> str:
    data = ctx.data
    h = hashlib.sha256(teacher_print.encode())
    h.update(f"{data.name}:{data.mean}:{data.std}:{ctx.precision.name}".encode())
    h.update(data.train.images.numpy().tobytes())
    h.update(data.train.labels.numpy().tobytes())
    return h.hexdigest()


@torch.no_grad()
def compute_logits(teacher: nn.Module, ctx: RunContext, batch_size: int) -> torch.Tensor:
    """float32 [N_train, classes] on ``ctx.device``: the teacher (eval mode) on the un-augmented train split."""
    data = ctx.data
    loader = TensorLoader(data.train, batch_size, mean=data.mean, std=data.std, device=ctx.device,
                          channels_last=ctx.channels_last)
    teacher.eval()
    out = []
    with ctx.precision.autocast():
        for x, _ in loader:
            out.append(teacher(x).float())
    return torch.cat(out)


def teacher_logits(teacher: nn.Module, ctx: RunContext, batch_size: int) -> tuple[torch.Tensor, bool]:
    """The teacher's train-split logits and whether they came from the disk cache.

    The disk copy is used only with ``runtime.cache=true`` and a teacher whose weights can be fingerprinted; a
    file lock makes parallel sweep jobs compute it once.
    """
    fingerprint = weights_fingerprint(teacher)
    if not ctx.plan.runtime.cache or fingerprint is None:
        return compute_logits(teacher, ctx, batch_size), False
    key = _table_key(fingerprint, ctx)
    root = resolve_path(ctx.cfg.paths.cache_dir) / "teacher_logits"
    path = root / f"{key}.pt"
    with file_lock(root / "locks" / f"{key}.lock", what=f"teacher logits {key[:12]}"):
        table = _load(path, len(ctx.data.train))
        if table is not None:
            return table.to(ctx.device), True
        table = compute_logits(teacher, ctx, batch_size)
        atomic_torch_save(table.cpu(), path)
    return table, False


def _load(path: Path, rows: int) -> torch.Tensor | None:
    if not path.is_file():
        return None
    try:
        table = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 — a damaged file means: recompute it
        print(f"[compressbench] teacher logits {path.name[:12]} are unreadable ({e}); recomputing", flush=True)
        return None
    if not isinstance(table, torch.Tensor) or table.ndim != 2 or len(table) != rows:
        return None
    return table
