"""Teacher logits computed once for the whole train split (torchdistill's trick), looked up per batch by index.

Without augmentation a training image is the same tensor every epoch, so the teacher's answer is too: one
teacher pass over the train split replaces one per epoch, and a KD epoch costs about a plain student epoch.
The table is also kept on disk under ``<cache_dir>/teacher_logits/``, keyed by a hash of the teacher's weights,
the train images and the normalisation — so a sweep over temperatures or students computes it once.
"""
from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import torch
from torch import nn

from compressbench.data.tensors import TensorLoader

if TYPE_CHECKING:
    from compressbench.engine.env import StageEnv


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


def _table_key(teacher_print: str, env: StageEnv) -> str:
    data = env.data
    h = hashlib.sha256(teacher_print.encode())
    h.update(f"{data.name}:{data.mean}:{data.std}:{env.precision.name}".encode())
    h.update(data.train.images.numpy().tobytes())
    h.update(data.train.labels.numpy().tobytes())
    return h.hexdigest()


@torch.no_grad()
def compute_logits(teacher: nn.Module, env: StageEnv, batch_size: int) -> torch.Tensor:
    """float32 [N_train, classes] on ``env.device``: the teacher (eval mode) on the un-augmented train split.

    Computed in fp32 whatever the training route: one pass, whose targets every epoch of the student reads, is
    worth the exact logits (bf16 would round them to 3 significant digits, and differently per batch size).
    """
    data = env.data
    loader = TensorLoader(data.train, batch_size, mean=data.mean, std=data.std, device=env.device,
                          channels_last=env.channels_last)
    teacher.eval()
    return torch.cat([teacher(x).float() for x, _ in loader])


def teacher_logits(teacher: nn.Module, env: StageEnv, batch_size: int) -> tuple[torch.Tensor, bool]:
    """The teacher's train-split logits and whether they came from disk (the pipeline's ``TensorMemo``).

    Kept on disk only for a teacher whose weights can be fingerprinted; a file lock makes parallel sweep jobs
    compute it once.
    """
    fingerprint = weights_fingerprint(teacher)
    if fingerprint is None:
        return compute_logits(teacher, env, batch_size), False
    rows = len(env.data.train)
    table, hit = env.memo.get("teacher_logits", _table_key(fingerprint, env),
                               lambda: compute_logits(teacher, env, batch_size),
                               lambda t: t.ndim == 2 and len(t) == rows)
    return table.to(env.device), hit
