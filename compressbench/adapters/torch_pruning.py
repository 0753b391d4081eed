"""torch-pruning (Fang et al. 2023, "DepGraph") behind our names: a model's channel groups, scored and removed.

The only module that imports ``torch_pruning``. A *channel group* is a set of output channels that must go
together: a conv's filters plus everything coupled to them — the BatchNorm after it, the input channels of
the layers that read it, every conv feeding the same residual sum, the matching slices of a DenseNet concat
and of the norms that read the concat. Removing channel ``i`` of a group removes it from all of those, so the
model stays consistent and becomes physically smaller (plain ``nn.Module`` layers with fewer channels).
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch_pruning as tp
from torch import nn

from compressbench.models import eval_mode

PRUNABLE = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
_NORMS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)


@dataclass
class ChannelGroup:
    """One group of coupled output channels of a model (see the module docstring).

    Attributes:
        layers: names of the conv/linear layers whose output channels these are (several when a residual sum
            couples them), in module order; the group is known by ``layers[0]``.
        channels: how many channels the group has now.
    """

    layers: tuple[str, ...]
    channels: int
    _group: Any
    _graph: Any

    def items(self) -> Iterator[tuple[nn.Module, bool, list[int], list[int]]]:
        """(module, prunes its outputs?, the module's indices, the matching root channel indices)."""
        for item in self._group.items:
            module = item.dep.target.module
            if isinstance(module, nn.Module):
                yield (module, self._graph.is_out_channel_pruning_fn(item.dep.handler), list(item.idxs),
                       list(item.root_idxs))

    @torch.no_grad()
    def l1(self) -> torch.Tensor:
        """Li et al.'s criterion: per channel, the L1 norm of the filters it would remove (summed over every
        conv/linear of the group, so a residual group is ranked by all the filters it joins)."""
        score = torch.zeros(self.channels)
        for module, is_out, idxs, roots in self.items():
            if is_out and isinstance(module, PRUNABLE):
                w = module.weight.detach()[idxs].flatten(1).abs().sum(1).float().cpu()
                score.scatter_add_(0, torch.tensor(roots), w)
        return score

    @torch.no_grad()
    def taylor(self) -> torch.Tensor:
        """First-order Taylor importance (Molchanov et al. 2019): per channel, the sum over every weight the
        channel's removal would take away (its filters, the norm's scale and shift, the readers' input
        weights) of |w * dL/dw|, from the gradients in ``.grad`` (accumulate a few batches first)."""
        score = torch.zeros(self.channels)
        for module, is_out, idxs, roots in self.items():
            if not isinstance(module, (*PRUNABLE, *_NORMS)):
                continue
            for name in ("weight", "bias"):
                t = getattr(module, name, None)
                if not isinstance(t, torch.Tensor) or (name == "bias" and isinstance(module, PRUNABLE)
                                                       and not is_out):
                    continue
                if t.grad is None:
                    raise RuntimeError(f"no gradient for {type(module).__name__}.{name} in channel group "
                                       f"{self.layers[0]}; accumulate gradients (backward) before scoring")
                dim = 1 if isinstance(module, PRUNABLE) and not is_out else 0
                index = torch.tensor(idxs, device=t.device)
                term = (t.detach().index_select(dim, index) * t.grad.index_select(dim, index)).abs()
                per_channel = term.transpose(0, dim).reshape(len(idxs), -1).sum(1).float().cpu()
                score.scatter_add_(0, torch.tensor(roots), per_channel)
        return score

    def remove(self, idxs: Sequence[int]) -> None:
        """Physically remove channels ``idxs`` (root numbering) from every layer of the group."""
        idxs = sorted(int(i) for i in idxs)
        if not idxs:
            return
        if len(idxs) >= self.channels:
            raise ValueError(f"removing all {self.channels} channels of {self.layers[0]} would cut the network; "
                             "at least one must survive")
        root = self._group[0].dep
        self._graph.get_pruning_group(root.target.module, root.handler, idxs).prune()
        self.channels -= len(idxs)

    @contextmanager
    def zeroed(self, idxs: Sequence[int]) -> Iterator[None]:
        """Within the block the channels ``idxs`` contribute nothing anywhere, exactly as if removed: their
        filters and biases, the norm scales/shifts and the reading layers' input weights are zero. Restored
        on exit. Cheap (no copy of the model), so a sensitivity scan can try every group at every ratio."""
        if not len(idxs):
            yield
            return
        group = self._graph.get_pruning_group(self._group[0].dep.target.module, self._group[0].dep.handler,
                                              sorted(int(i) for i in idxs))
        saved: list[tuple[torch.Tensor, torch.Tensor]] = []
        with torch.no_grad():
            for item in group.items:
                module, idx = item.dep.target.module, torch.as_tensor(list(item.idxs))
                if not isinstance(module, nn.Module):
                    continue
                is_out = self._graph.is_out_channel_pruning_fn(item.dep.handler)
                if isinstance(module, PRUNABLE) and getattr(module, "groups", 1) != 1:
                    raise NotImplementedError(f"zeroing channels of grouped conv {module} is not supported")
                for name in ("weight", "bias"):
                    t = getattr(module, name, None)
                    if not isinstance(t, torch.Tensor):
                        continue
                    if isinstance(module, PRUNABLE) and not is_out:
                        if name == "bias":
                            continue  # input channels have no bias
                        dim = 1
                    elif isinstance(module, (*PRUNABLE, *_NORMS)):
                        dim = 0
                    else:
                        continue
                    saved.append((t, t.detach().clone()))
                    t.index_fill_(dim, idx.to(t.device), 0.0)
        try:
            yield
        finally:
            with torch.no_grad():
                for t, original in reversed(saved):  # a tensor saved twice gets its first (true) copy last
                    t.copy_(original)


def channel_groups(model: nn.Module, example: torch.Tensor, ignore: Iterable[nn.Module] = ()) -> list[ChannelGroup]:
    """The channel groups of ``model`` (traced with ``example``), leaving out groups whose output channels
    would include an ignored layer's (e.g. the classifier: its outputs are the classes)."""
    with eval_mode(model):  # the tracing forward must not update BatchNorm statistics
        graph = tp.DependencyGraph().build_dependency(model, example_inputs=example, verbose=False)
    names = {m: n for n, m in model.named_modules()}
    order = {n: i for i, n in enumerate(names.values())}
    groups = []
    for group in graph.get_all_groups(ignored_layers=list(ignore), root_module_types=PRUNABLE):
        layers = {names[item.dep.target.module] for item in group.items
                  if isinstance(item.dep.target.module, PRUNABLE)
                  and graph.is_out_channel_pruning_fn(item.dep.handler)}
        root = group[0].dep.target.module
        groups.append(ChannelGroup(tuple(sorted(layers, key=order.__getitem__)), graph.get_out_channels(root),
                                   group, graph))
    return sorted(groups, key=lambda g: order[g.layers[0]])
