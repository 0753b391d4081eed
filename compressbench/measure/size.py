"""Model size, every flavour side by side (DESIGN.md §6)."""
from __future__ import annotations

import gzip
import io

import torch
from torch import nn


def serialize(model: nn.Module) -> bytes:
    """The deployable artifact's bytes: the model's own (``compressbench_artifact()``) or its state_dict.

    Stages whose artifact is not a state_dict (an ONNX file, an int8 package) give the model a
    ``compressbench_artifact`` method, so ``size_bytes`` is always what a user would ship.
    """
    artifact = getattr(model, "compressbench_artifact", None)
    if callable(artifact):
        return artifact()
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.getvalue()


def param_counts(model: nn.Module) -> tuple[int, int]:
    """(parameters, nonzero parameters), counting shared tensors once."""
    seen: set[int] = set()
    total = nonzero = 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        nonzero += int(torch.count_nonzero(p.detach()).item())
    return total, nonzero


def size_metrics(model: nn.Module) -> dict[str, float | int]:
    params, nonzero = param_counts(model)
    data = serialize(model)
    return {
        "params": params,
        "nonzero_params": nonzero,
        "sparsity": 1.0 - nonzero / params if params else 0.0,
        "dense_bytes": params * 4,
        "size_bytes": len(data),
        "gzip_bytes": len(gzip.compress(data, compresslevel=6, mtime=0)),
    }
