"""MACs by counting: forward hooks on conv and linear layers at batch 1.

``macs`` is the dense count of the model as it is (so unstructured zeros do not reduce it); ``effective_macs``
leaves out output filters and input channels whose weights are all zero (channels a structured method zeroed
but did not remove). Physically removed channels reduce both.
"""
from __future__ import annotations

import math

import torch
from torch import nn

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


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
        totals[1] += macs * _live_fraction(m.weight, m.groups)

    def linear_hook(m: nn.Module, inputs: tuple, out: torch.Tensor) -> None:
        macs = out.numel() / batch * m.in_features
        totals[0] += macs
        totals[1] += macs * _live_fraction(m.weight.unsqueeze(-1), 1)

    handles = []
    for m in model.modules():
        if isinstance(m, _CONV):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    try:
        model(example)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return int(round(totals[0])), int(round(totals[1]))
