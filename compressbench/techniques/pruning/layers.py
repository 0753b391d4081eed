"""Which layers a pruning config names, checked against the model before anything is pruned.

A selector in ``ignore`` or a key of ``layer_amounts`` matches a layer (conv or linear module, by its name in
``model.named_modules()``) when it is the layer's name (``layer1.0.conv1``), a parent module of it (``layer1``:
a whole ResNet stage) or a glob pattern over names (``layer*.*.conv1``, ``features.2?``).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

import torch
from torch import nn

from compressbench.config import BadValue
from compressbench.models import eval_mode

PRUNABLE = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


@dataclass(frozen=True)
class Spec:
    """What to prune, in the config's words: ``amount`` of every layer (or of all layers together when
    ``scope`` is global) unless ``layer_amounts`` names the layer; ``ignore``d layers are never pruned.
    ``keep_rounding`` says how a channel count is rounded (``structured.kept_channels``)."""

    amount: float
    layer_amounts: Mapping[str, float] = field(default_factory=dict)
    ignore: Sequence[str] = ()
    scope: str = "layer"  # layer | global
    keep_rounding: str = "floor"  # floor | nearest (channels only; see structured.KEEP_ROUNDINGS)


def prunable_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The conv and linear layers of ``model`` by name, in module order."""
    return {name: m for name, m in model.named_modules() if isinstance(m, PRUNABLE)}


def matches(selector: str, name: str) -> bool:
    """Does ``selector`` (a name, a parent module's name or a glob pattern) pick layer ``name``?"""
    return name == selector or name.startswith(selector + ".") or fnmatchcase(name, selector)


def check_selectors(model: nn.Module, key: str, selectors: Iterable[str]) -> None:
    """Raise a BadValue naming ``key`` when a selector matches no conv/linear layer; list the valid names."""
    names = list(prunable_layers(model))
    for selector in selectors:
        if not any(matches(selector, n) for n in names):
            raise BadValue(key, selector, "a conv/linear layer name of this model, a parent module of some, or "
                           f"a glob pattern over them (e.g. 'layer1.*.conv1'); its layers: {', '.join(names)}")


def amount_for(names: Sequence[str], layer_amounts: Mapping[str, float], default: float) -> tuple[float, bool]:
    """The amount for a layer (or a coupled group of layers): the first ``layer_amounts`` entry, in order,
    that matches any of ``names``; else ``default``. The flag says whether an entry matched."""
    for selector, amount in layer_amounts.items():
        if any(matches(selector, n) for n in names):
            return float(amount), True
    return default, False


def by_layer(name: str, m: nn.Module, named: Mapping[str, int], linear: int, conv: int) -> int:
    """The first ``named`` entry (layer / parent / glob) that picks ``name``; else the default for its kind."""
    value = next((v for selector, v in named.items() if matches(selector, name)), None)
    if value is not None:
        return value
    return linear if isinstance(m, nn.Linear) else conv


def is_ignored(names: Sequence[str], ignore: Sequence[str]) -> bool:
    return any(matches(s, n) for s in ignore for n in names)


@torch.no_grad()
def classifier_name(model: nn.Module, example: torch.Tensor) -> str:
    """The last conv/linear layer the forward pass runs: its outputs are the classes, never pruned away."""
    order: list[str] = []
    names = {m: n for n, m in prunable_layers(model).items()}
    handles = [m.register_forward_hook(lambda mod, i, o: order.append(names[mod])) for m in names]
    try:
        with eval_mode(model):
            model(example)
    finally:
        for h in handles:
            h.remove()
    if not order:
        raise ValueError("the model has no conv or linear layer to prune")
    return order[-1]
