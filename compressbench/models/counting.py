"""Counting a torch model: MACs by forward hooks on conv and linear layers at batch 1, and its parameters.

``macs`` is the dense count of the model as it is (so unstructured zeros do not reduce it); ``effective_macs``
leaves out output filters and input channels whose weights are all zero (channels a structured method zeroed
but did not remove). Physically removed channels reduce both.
"""
from __future__ import annotations

import inspect
import math
from collections.abc import Iterator

import torch
from torch import nn

from compressbench.models._common import eval_mode

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _weight(m: nn.Module) -> torch.Tensor:
    """The float weight of a layer; quantized layers keep it packed behind a ``weight()`` method."""
    w = m.weight() if inspect.ismethod(m.weight) else m.weight
    return w.dequantize() if w.is_quantized else w


def _is_conv(m: nn.Module) -> bool:
    """A float conv, or a quantized one (torch.ao's int8 convs share the attributes, not the class)."""
    return isinstance(m, _CONV) or (inspect.ismethod(getattr(m, "weight", None))
                                    and all(hasattr(m, a) for a in ("in_channels", "kernel_size", "groups")))


def _is_linear(m: nn.Module) -> bool:
    return isinstance(m, nn.Linear) or (inspect.ismethod(getattr(m, "weight", None)) and hasattr(m, "in_features"))


def _live_fraction(weight: torch.Tensor, groups: int) -> float:
    """Fraction of (output filter × input channel) work left when all-zero filters/channels are skipped."""
    w = weight.detach()
    flat = w.reshape(w.shape[0], w.shape[1], -1)
    live_out = (flat.abs().sum(dim=(1, 2)) > 0).float().mean().item()
    # Input channels only decouple from all filters in an ungrouped layer.
    live_in = (flat.abs().sum(dim=(0, 2)) > 0).float().mean().item() if groups == 1 else 1.0
    return live_out * live_in


@torch.no_grad()
def count_macs(model: nn.Module, example: torch.Tensor) -> tuple[int, int]:
    """(macs, effective_macs) for one sample shaped like ``example`` (batch dimension included)."""
    totals = [0.0, 0.0]
    batch = example.shape[0]

    def conv_hook(m: nn.Module, inputs: tuple, out: torch.Tensor) -> None:
        per_out = (m.in_channels // m.groups) * math.prod(m.kernel_size)
        macs = out.numel() / batch * per_out
        totals[0] += macs
        totals[1] += macs * _live_fraction(_weight(m), m.groups)

    def linear_hook(m: nn.Module, inputs: tuple, out: torch.Tensor) -> None:
        macs = out.numel() / batch * m.in_features
        totals[0] += macs
        totals[1] += macs * _live_fraction(_weight(m).unsqueeze(-1), 1)

    handles = []
    for m in model.modules():
        if _is_conv(m):
            handles.append(m.register_forward_hook(conv_hook))
        elif _is_linear(m):
            handles.append(m.register_forward_hook(linear_hook))
    try:
        with eval_mode(model):
            model(example)
    finally:
        for h in handles:
            h.remove()
    return int(round(totals[0])), int(round(totals[1]))


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
    """(parameters, nonzero parameters) of a torch model, counting shared tensors once; quantized layers count
    their packed weights and biases."""
    seen: set[int] = set()
    total = nonzero = 0
    for p in (*model.parameters(), *_packed_tensors(model)):
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        nonzero += int(torch.count_nonzero(p.detach()).item())
    return total, nonzero
