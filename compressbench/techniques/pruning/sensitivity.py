"""Sensitivity analysis (Han et al. 2015 Fig. 6, Li et al. 2017 Fig. 2, Distiller's ``sensitivity``): prune one
layer at a time by each amount, measure accuracy, restore, and see which layers tolerate pruning.

Any pruning criterion that needs no gradients scans (``criteria.scannable``): a weights criterion (``magnitude``)
zeros the lowest-scored weights of one conv/linear layer; a channels criterion (``l1_filter``) takes the
lowest-scored channels of one channel group away (zeroed wherever they act, which gives the same outputs as
removing them; see ``ChannelGroup.zeroed``). The model is restored after every point, so the scan needs no copies.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from compressbench.adapters.torch_pruning import channel_groups
from compressbench.techniques.pruning.criteria import PRUNE_CRITERIA, scannable
from compressbench.techniques.pruning.layers import is_ignored, prunable_layers
from compressbench.techniques.pruning.structured import ignored_modules
from compressbench.techniques.pruning.unstructured import lowest

Evaluate = Callable[[nn.Module], dict[str, float]]  # → {"top1": percent, "loss": ...}


def _row(method: str, layers: Sequence[str], amount: float, removed: int, size: int, result: dict[str, float],
         baseline: dict[str, float]) -> dict[str, Any]:
    return {"method": method, "layer": layers[0], "coupled": " ".join(layers[1:]), "amount": amount,
            "removed": removed, "of": size, "top1": result["top1"], "loss": result["loss"],
            "baseline_top1": baseline["top1"], "top1_drop": baseline["top1"] - result["top1"]}


@torch.no_grad()
def scan_weights(model: nn.Module, method: str, evaluate: Evaluate, amounts: Sequence[float], ignore: Sequence[str],
                 baseline: dict[str, float], generator: torch.Generator | None,
                 progress: Callable = iter) -> list[dict[str, Any]]:
    """A weights criterion: in one layer at a time, the ``amount`` lowest-scored weights zeroed."""
    score = PRUNE_CRITERIA.get(method).score
    rows = []
    layers = {n: m for n, m in prunable_layers(model).items() if not is_ignored([n], ignore)}
    for name, module in progress(layers.items()):
        w = module.weight
        saved = w.detach().clone()
        scores = score(saved, generator)
        for amount in amounts:
            k = round(amount * w.numel())
            w.mul_(~lowest(scores, k).view_as(w))
            try:
                rows.append(_row(method, [name], amount, k, w.numel(), evaluate(model), baseline))
            finally:
                w.copy_(saved)
    return rows


def scan_channels(model: nn.Module, method: str, evaluate: Evaluate, amounts: Sequence[float],
                  ignore: Sequence[str], baseline: dict[str, float], example: torch.Tensor, classifier: str,
                  progress: Callable = iter) -> list[dict[str, Any]]:
    """A channels criterion: in one channel group at a time, the ``amount`` lowest-scored channels zeroed wherever
    they act (the outputs of removing them)."""
    score = PRUNE_CRITERIA.get(method).score
    rows = []
    for group in progress(channel_groups(model, example, ignored_modules(model, ignore, classifier))):
        order = torch.argsort(score(group), stable=True)
        for amount in amounts:
            k = min(round(amount * group.channels), group.channels - 1)  # one channel always survives
            with group.zeroed(order[:k].tolist()):
                result = evaluate(model)
            rows.append(_row(method, group.layers, amount, k, group.channels, result, baseline))
    return rows


def scan(model: nn.Module, evaluate: Evaluate, methods: Sequence[str], amounts: Sequence[float],
         ignore: Sequence[str], example: torch.Tensor, classifier: str,
         progress: Callable = iter, generator: torch.Generator | None = None) -> list[dict[str, Any]]:
    """Rows of (method, layer, amount) → accuracy; the model is left as it was. ``methods`` are pruning criteria
    that need no gradients (``criteria.scannable``); ``generator`` feeds a random one."""
    baseline = evaluate(model)
    rows: list[dict[str, Any]] = []
    for method in methods:
        if method not in scannable():
            raise ValueError(f"unknown sensitivity method {method!r}; use {', '.join(scannable())}")
        if PRUNE_CRITERIA.get(method).unit == "weights":
            rows += scan_weights(model, method, evaluate, amounts, ignore, baseline, generator, progress)
        else:
            rows += scan_channels(model, method, evaluate, amounts, ignore, baseline, example, classifier, progress)
    return rows
