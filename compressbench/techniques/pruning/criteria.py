"""The PRUNE_CRITERIA registry: how a pruning method ranks what it removes.

A criterion scores either single weights (``unit="weights"``: the lowest are zeroed) or the output channels of
a channel group (``unit="channels"``: the lowest are removed, with their dependencies), and says which ``scope``
its papers use when one amount is given. Adding a criterion is one decorated function — here, or in a module
of your own imported before the config is validated; ``prune.method=<name>`` then selects it. This module
imports no torch at load time (torch is imported in the scores), so ``prune.method`` is checked before it is.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from compressbench.infra.registry import Registry

if TYPE_CHECKING:
    import torch

    from compressbench.adapters.torch_pruning import ChannelGroup


@dataclass(frozen=True)
class Criterion:
    """A scoring rule: ``score(weight, generator)`` for weights, ``score(group)`` for channel groups.

    Attributes:
        unit: ``weights`` or ``channels`` (what ``prune.amount`` is a fraction of).
        scope: ``layer`` or ``global``: the ranking its papers use with a single amount (``prune.scope: null``).
        needs_gradients: the channel scores read ``.grad`` (the stage accumulates a few training batches first).
    """

    score: Callable[..., torch.Tensor]
    unit: str
    scope: str
    needs_gradients: bool = False


PRUNE_CRITERIA: Registry[Criterion] = Registry("pruning method")


def register(name: str, unit: str, scope: str, needs_gradients: bool = False) -> Callable:
    if unit not in ("weights", "channels") or scope not in ("layer", "global"):
        raise ValueError(f"criterion {name}: unit must be weights or channels, scope layer or global")

    def add(fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        PRUNE_CRITERIA.register(name)(Criterion(fn, unit, scope, needs_gradients))
        return fn

    return add


# Magnitude: Han et al. (2015) set per-layer rates from a sensitivity scan (say them in layer_amounts, which
# are always per layer); with one amount, a single global threshold is the standard baseline (Frankle & Carbin
# 2019 for deep convnets; Blalock et al. 2020 found it beats the same rate in every layer) and lets the big,
# redundant layers lose the most, as Han's rates do.
@register("magnitude", "weights", "global")
def magnitude(weight: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """|w| (Han et al. 2015, "Learning both weights and connections")."""
    return weight.detach().flatten().float().abs()


# Random is magnitude's control, so it ranks the same way.
@register("random", "weights", "global")
def random(weight: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Uniform noise: the control any criterion must beat."""
    import torch

    return torch.rand(weight.numel(), generator=generator).to(weight.device)


# L1-filter ranks filters within each layer (Li et al. 2017: per-layer, per-stage rates).
@register("l1_filter", "channels", "layer")
def l1_filter(group: ChannelGroup) -> torch.Tensor:
    """The L1 norm of each channel's filters, summed over the group (Li et al. 2017)."""
    return group.l1()


# Taylor ranks all neurons of the network together (Molchanov et al. 2017, 2019: no per-layer analysis).
@register("taylor", "channels", "global", needs_gradients=True)
def taylor(group: ChannelGroup) -> torch.Tensor:
    """First-order Taylor estimate of the loss change, sum |w * dL/dw| over the group (Molchanov et al. 2019)."""
    return group.taylor()


def methods(unit: str | None = None) -> list[str]:
    return [n for n in PRUNE_CRITERIA.names() if unit is None or PRUNE_CRITERIA.get(n).unit == unit]


def scannable() -> list[str]:
    """Criteria a sensitivity scan can prune with: those that need no gradients (one evaluation per point)."""
    return [n for n in PRUNE_CRITERIA.names() if not PRUNE_CRITERIA.get(n).needs_gradients]
