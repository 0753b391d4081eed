"""Unstructured pruning: zero individual weights of conv and linear layers; shapes stay as they are.

``magnitude`` zeros the smallest |w| (Han et al. 2015, "Learning both weights and connections"), ``random``
zeros weights at random (the control a criterion must beat). The zeros are written into the weights
themselves — no ``weight_orig``/``weight_mask`` reparametrisation is left behind — and later training keeps
them (``engine.KeepSparsity``). Weights that are already zero are pruned first, so calling this again with a
larger fraction (iterative and gradual schedules) only ever adds zeros. Biases and norms are not pruned.
"""
from __future__ import annotations

import torch
from torch import nn

from compressbench.techniques.pruning.criteria import PRUNE_CRITERIA
from compressbench.techniques.pruning.layers import Spec, amount_for, is_ignored, prunable_layers


def lowest(scores: torch.Tensor, k: int) -> torch.Tensor:
    """A bool mask of exactly ``k`` lowest entries of the 1-D ``scores`` (ties broken by position)."""
    k = max(0, min(int(k), scores.numel()))
    mask = torch.zeros_like(scores, dtype=torch.bool)
    if k == 0:
        return mask
    # kthvalue, not a full argsort: a global ranking of ResNet-50 sorts 23M weights otherwise.
    threshold = scores.kthvalue(k).values
    mask = scores < threshold
    ties = torch.nonzero(scores == threshold).flatten()
    mask[ties[: k - int(mask.sum())]] = True
    return mask


def _scores(weight: torch.Tensor, method: str, generator: torch.Generator | None) -> torch.Tensor:
    w = weight.detach().flatten().float()
    score = PRUNE_CRITERIA.get(method).score(weight, generator)
    return torch.where(w == 0, torch.full_like(score, -1.0), score)  # existing zeros go first


def weight_masks(model: nn.Module, spec: Spec, fraction: float = 1.0, method: str = "magnitude",
                 generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """Per layer, a bool mask of the weights to keep after pruning ``fraction`` of each layer's amount.

    Layers named in ``spec.layer_amounts`` are ranked on their own; the others on their own too
    (``scope=layer``) or all together (``scope=global``: one threshold over every remaining weight).
    """
    layers = {n: m for n, m in prunable_layers(model).items() if not is_ignored([n], spec.ignore)}
    masks: dict[str, torch.Tensor] = {}
    pooled: list[str] = []
    for name, module in layers.items():
        amount, named = amount_for([name], spec.layer_amounts, spec.amount)
        if spec.scope == "global" and not named:
            pooled.append(name)
            continue
        scores = _scores(module.weight, method, generator)
        masks[name] = ~lowest(scores, round(fraction * amount * scores.numel()))
    if pooled:
        scores = torch.cat([_scores(layers[n].weight, method, generator) for n in pooled])
        keep = ~lowest(scores, round(fraction * spec.amount * scores.numel()))
        for name, part in zip(pooled, keep.split([layers[n].weight.numel() for n in pooled]), strict=True):
            masks[name] = part
    return {n: masks[n].view_as(layers[n].weight) for n in layers}


@torch.no_grad()
def prune_weights_(model: nn.Module, spec: Spec, fraction: float = 1.0, method: str = "magnitude",
                   generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """Zero the pruned weights of ``model`` in place; return the keep-masks (for re-applying during training)."""
    masks = weight_masks(model, spec, fraction, method, generator)
    layers = prunable_layers(model)
    for name, mask in masks.items():
        layers[name].weight.mul_(mask)
    return masks
