"""Sensitivity analysis (Han et al. 2015 Fig. 6, Li et al. 2017 Fig. 2, Distiller's ``sensitivity``): prune one
layer at a time by each amount, measure accuracy, restore, and see which layers tolerate pruning.

``magnitude`` zeros the smallest weights of one conv/linear layer; ``l1_filter`` takes the lowest-L1 channels
of one channel group away (zeroed wherever they act, which gives the same outputs as removing them; see
``ChannelGroup.zeroed``). The model is restored after every point, so the scan needs no copies.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from compressbench.adapters.torch_pruning import channel_groups
from compressbench.techniques.pruning.choices import SENSITIVITY_METHODS as METHODS
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
def scan_magnitude(model: nn.Module, evaluate: Evaluate, amounts: Sequence[float], ignore: Sequence[str],
                   baseline: dict[str, float], progress: Callable = iter) -> list[dict[str, Any]]:
    rows = []
    layers = {n: m for n, m in prunable_layers(model).items() if not is_ignored([n], ignore)}
    for name, module in progress(layers.items()):
        w = module.weight
        saved = w.detach().clone()
        for amount in amounts:
            k = round(amount * w.numel())
            w.mul_(~lowest(saved.abs().flatten(), k).view_as(w))
            try:
                rows.append(_row("magnitude", [name], amount, k, w.numel(), evaluate(model), baseline))
            finally:
                w.copy_(saved)
    return rows


def scan_filters(model: nn.Module, evaluate: Evaluate, amounts: Sequence[float], ignore: Sequence[str],
                 baseline: dict[str, float], example: torch.Tensor, classifier: str,
                 progress: Callable = iter) -> list[dict[str, Any]]:
    rows = []
    for group in progress(channel_groups(model, example, ignored_modules(model, ignore, classifier))):
        order = torch.argsort(group.l1(), stable=True)
        for amount in amounts:
            k = min(round(amount * group.channels), group.channels - 1)  # one channel always survives
            with group.zeroed(order[:k].tolist()):
                result = evaluate(model)
            rows.append(_row("l1_filter", group.layers, amount, k, group.channels, result, baseline))
    return rows


def scan(model: nn.Module, evaluate: Evaluate, methods: Sequence[str], amounts: Sequence[float],
         ignore: Sequence[str], example: torch.Tensor, classifier: str,
         progress: Callable = iter) -> list[dict[str, Any]]:
    """Rows of (method, layer, amount) → accuracy; the model is left as it was."""
    baseline = evaluate(model)
    rows: list[dict[str, Any]] = []
    for method in methods:
        if method == "magnitude":
            rows += scan_magnitude(model, evaluate, amounts, ignore, baseline, progress)
        elif method == "l1_filter":
            rows += scan_filters(model, evaluate, amounts, ignore, baseline, example, classifier, progress)
        else:
            raise ValueError(f"unknown sensitivity method {method!r}; use {', '.join(METHODS)}")
    return rows
