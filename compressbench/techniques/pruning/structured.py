"""Structured pruning: rank output channels and remove the weakest, physically, with their dependencies.

``l1_filter`` ranks a channel by the L1 norm of its filters (Li et al. 2017, "Pruning Filters for Efficient
ConvNets"); ``taylor`` by the first-order Taylor estimate of the loss change, sum |w * dL/dw| over the group
(Molchanov et al. 2019), from gradients of a few training batches. Channels are counted per *group*
(``adapters.torch_pruning``): a residual sum's convs, or a DenseNet concat's slices, lose the same channels.
The classifier's outputs are never pruned, and every group keeps at least one channel.

``amount`` is a fraction of each group's *original* channels, so iterative rounds prune towards the same
final width (round k of n removes channels until ``k/n * amount`` of the original ones are gone). How many
channels a fraction ``p`` of ``c`` leaves is ``kept_channels``: Li et al. keep ``int(c * (1 - p))`` (floor),
as torch-pruning's own pruners do; ``nearest`` removes ``round(c * p)`` instead.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from compressbench.adapters.torch_pruning import ChannelGroup, channel_groups
from compressbench.models import eval_mode
from compressbench.techniques.pruning.choices import KEEP_ROUNDINGS
from compressbench.techniques.pruning.criteria import PRUNE_CRITERIA
from compressbench.techniques.pruning.layers import Spec, amount_for, matches, prunable_layers


@dataclass
class GroupResult:
    layers: tuple[str, ...]
    original: int
    before: int
    after: int


def out_channels(model: nn.Module) -> dict[str, int]:
    """Output channels (features) of every conv/linear layer, by name."""
    return {n: int(m.weight.shape[0]) for n, m in prunable_layers(model).items()}


def ignored_modules(model: nn.Module, ignore: Iterable[str], classifier: str) -> list[nn.Module]:
    selectors = [classifier, *ignore]
    return [m for n, m in prunable_layers(model).items() if any(matches(s, n) for s in selectors)]


def accumulate_gradients_(model: nn.Module, batches: Iterable[tuple[torch.Tensor, ...]]) -> None:
    """Sum the cross-entropy gradients of ``batches`` into ``.grad`` (in eval mode: BN statistics stay put)."""
    model.zero_grad(set_to_none=True)
    with eval_mode(model):
        for x, y, *_ in batches:
            F.cross_entropy(model(x), y).backward()


def kept_channels(channels: int, fraction: float, rounding: str = "floor") -> int:
    """Channels left when ``fraction`` of ``channels`` is pruned: ``floor`` keeps int(c * (1 - p)) (Li et al.
    2017; ResNet-56 at p=0.1 keeps 57 of 64 filters), ``nearest`` keeps c - round(c * p) (58 of 64)."""
    if rounding == "floor":
        # The epsilon keeps float noise from flooring an exact count one down: 10 * (1 - 0.9) = 0.99999...
        return math.floor(channels * (1 - fraction) + 1e-9)
    if rounding == "nearest":
        return channels - round(channels * fraction)
    raise ValueError(f"unknown keep_rounding {rounding!r}; use one of {', '.join(KEEP_ROUNDINGS)}")


def _removals(groups: list[ChannelGroup], scores: list[torch.Tensor], spec: Spec, fraction: float,
              original: Mapping[str, int]) -> list[list[int]]:
    """Which channels of each group to remove (local or global ranking; at least one channel survives)."""
    chosen: list[list[int]] = [[] for _ in groups]
    pooled: list[int] = []
    for i, (g, s) in enumerate(zip(groups, scores, strict=True)):
        amount, named = amount_for(g.layers, spec.layer_amounts, spec.amount)
        if spec.scope == "global" and not named:
            pooled.append(i)
            continue
        c0 = original.get(g.layers[0], g.channels)
        keep = max(1, kept_channels(c0, fraction * amount, spec.keep_rounding))
        chosen[i] = torch.argsort(s, stable=True)[: max(0, g.channels - keep)].tolist()
    if pooled:
        # One ranking over all pooled groups; scores are divided by their group's mean so wide and narrow
        # layers, whose filters have very different norms, compete fairly.
        total0 = sum(original.get(groups[i].layers[0], groups[i].channels) for i in pooled)
        remove = sum(groups[i].channels for i in pooled) - kept_channels(total0, fraction * spec.amount,
                                                                         spec.keep_rounding)
        flat = [(float(v / scores[i].mean()) if scores[i].mean() > 0 else float(v), i, c)
                for i in pooled for c, v in enumerate(scores[i].tolist())]
        left = {i: groups[i].channels for i in pooled}
        for _, i, c in sorted(flat):
            if remove <= 0:
                break
            if left[i] > 1:
                chosen[i].append(c)
                left[i] -= 1
                remove -= 1
    return chosen


def traced_groups(model: nn.Module, example: torch.Tensor, ignored: list[nn.Module]) -> list[ChannelGroup]:
    """``channel_groups``, or ``Unsupported`` naming where torch-pruning lost track of the channels (a model from
    outside the zoo may reshape them in ways its dependency graph cannot map, e.g. ShuffleNet's channel shuffle)."""
    import traceback

    from compressbench.runtimes.base import Unsupported

    try:
        return channel_groups(model, example, ignored)
    except Exception as e:  # noqa: BLE001
        frames = [f.name for f in traceback.extract_tb(e.__traceback__) if "torch_pruning" in f.filename]
        where = f" in torch-pruning's {frames[-1]}" if frames else ""
        raise Unsupported(f"torch-pruning cannot map the channels of {type(model).__name__}{where}: "
                          f"{type(e).__name__}: {e}. Prune it unstructured (prune.method=magnitude), or leave the "
                          f"layers around that op out with prune.ignore") from e


def prune_channels_(model: nn.Module, spec: Spec, example: torch.Tensor, classifier: str, *,
                    method: str = "l1_filter", fraction: float = 1.0, original: Mapping[str, int] | None = None,
                    batches: Iterable[tuple[torch.Tensor, ...]] = (),
                    agree: Callable[[list[torch.Tensor]], list[torch.Tensor]] | None = None) -> list[GroupResult]:
    """Remove ``fraction`` of ``spec``'s channel amounts from ``model`` in place; return what each group lost.

    Args:
        example: an input batch to trace the model with.
        classifier: the layer whose outputs are the classes (``layers.classifier_name``); never pruned.
        original: output channels before any pruning (``out_channels``), for iterative rounds.
        batches: training batches for the ``taylor`` gradients.
        agree: makes every process use the same scores (under torchrun: rank 0's, whose batches differ
            from the other ranks' shards), so all ranks remove the same channels.
    """
    original = dict(original or out_channels(model))
    groups = traced_groups(model, example, ignored_modules(model, spec.ignore, classifier))
    criterion = PRUNE_CRITERIA.get(method)
    if criterion.needs_gradients:
        accumulate_gradients_(model, batches)
    scores = [criterion.score(g) for g in groups]
    if agree is not None:
        scores = agree(scores)
    model.zero_grad(set_to_none=True)
    removals = _removals(groups, scores, spec, fraction, original)
    results = []
    for g, idxs in zip(groups, removals, strict=True):
        before = g.channels
        g.remove(idxs)
        results.append(GroupResult(g.layers, original.get(g.layers[0], before), before, g.channels))
    return results
