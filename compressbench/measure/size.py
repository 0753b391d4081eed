"""Model size, every flavour side by side (DESIGN.md §6)."""
from __future__ import annotations

import gzip
import inspect
import io
from collections.abc import Iterator

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


def _packed_tensors(model: nn.Module) -> Iterator[torch.Tensor]:
    """Weights and biases that quantized layers keep packed (their ``weight()``/``bias()`` are methods and
    ``parameters()`` does not list them), dequantized."""
    for m in model.modules():
        for attr in ("weight", "bias"):
            get = getattr(m, attr, None)
            if inspect.ismethod(get):
                t = get()
                if isinstance(t, torch.Tensor):
                    yield t.dequantize() if t.is_quantized else t


def param_counts(model: nn.Module) -> tuple[int, int]:
    """(parameters, nonzero parameters), counting shared tensors once.

    Quantized layers count their packed weights and biases; a model whose artifact is not a torch module (an
    ONNX file, a compiled program) counts its own through ``compressbench_param_counts()``.
    """
    own = getattr(model, "compressbench_param_counts", None)
    if callable(own):
        return own()
    seen: set[int] = set()
    total = nonzero = 0
    for p in (*model.parameters(), *_packed_tensors(model)):
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
