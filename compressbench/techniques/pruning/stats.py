"""What a pruning achieved, in every unit at once, so no ratio can be read in the wrong one.

A config's ``amount`` is a fraction of *weights* (unstructured) or of *channels* (structured). The row then
records, whatever the method:
  achieved_sparsity          conv/linear weights now zero or removed, as a fraction of those before pruning
  params_removed_fraction    parameters physically removed (0 for unstructured: the tensors keep their shape)
  channels_removed_fraction  conv/linear output channels removed, the classifier's excluded
  macs_reduction             dense MACs before / after (1.0 for unstructured: zeros are still multiplied)
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from compressbench.models.counting import count_macs
from compressbench.techniques.pruning.layers import prunable_layers


@dataclass(frozen=True)
class Snapshot:
    params: int
    weights: int  # elements of conv/linear weights
    nonzero_weights: int
    channels: int  # output channels of conv/linear layers but the classifier
    macs: int


@torch.no_grad()
def snapshot(model: nn.Module, example: torch.Tensor, classifier: str) -> Snapshot:
    layers = prunable_layers(model)
    weights = [m.weight for m in layers.values()]
    return Snapshot(
        params=sum(p.numel() for p in model.parameters()),
        weights=sum(w.numel() for w in weights),
        nonzero_weights=sum(int(torch.count_nonzero(w)) for w in weights),
        channels=sum(int(m.weight.shape[0]) for n, m in layers.items() if n != classifier),
        macs=count_macs(model, example)[0],
    )


def achieved(before: Snapshot, after: Snapshot) -> dict[str, float]:
    return {
        "achieved_sparsity": 1.0 - after.nonzero_weights / before.weights,
        "params_removed_fraction": 1.0 - after.params / before.params,
        "channels_removed_fraction": 1.0 - after.channels / before.channels if before.channels else 0.0,
        "macs_reduction": before.macs / after.macs if after.macs else float("nan"),
    }
