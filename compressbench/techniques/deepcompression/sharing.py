"""Weight sharing (Han et al. 2016 §3): each layer's nonzero weights take one of at most 2^bits shared values.

``cluster_layer_`` runs 1-D k-means over a layer's surviving (nonzero) weights — pruned zeros stay zero — and
writes every weight as its centroid. The layer then carries its sharing with it, so a later ``train`` stage
finetunes the *shared values* without knowing about clustering:

- two non-persistent buffers, ``compressbench_codebook`` (the shared values) and ``compressbench_clusters``
  (each weight's cluster, -1 for zeros), travel with the module (deepcopy, ``.to()``; the stage cache saves them
  through ``SharingState``) but stay out of its state_dict, so checkpoints and ``size_bytes`` are those of the plain dense layer;
- a forward pre-hook (``ProjectShared``) notices that the weight changed since the last projection (an
  optimizer step did that) and moves each shared value by the summed (``update=sum``: Han's eq. 3, the true
  gradient of a shared value) or mean (``update=mean``) update of its members, then writes every member as its
  shared value again. One optimizer step lies between two forward passes of the training loop, so this is the
  centroid step of Han et al., taken lazily just before the next forward rather than right after the step;
- a load_state_dict post-hook (``ResyncShared``) re-derives the shared values from loaded weights (a loaded
  checkpoint is not an optimizer step), as ``engine.fit`` does when it restores its best epoch.

So a clustered layer holds at most 2^bits distinct nonzero values before, during and after finetuning.
"""
from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from compressbench.runtimes.eager import register_state
from compressbench.techniques.deepcompression.choices import SHARING_UPDATES as UPDATES
from compressbench.techniques.deepcompression.kmeans import kmeans_1d
from compressbench.techniques.pruning.layers import prunable_layers

# What a shared layer carries: two buffers and its update rule (a plain attribute: "mean" or "sum").
CODEBOOK, CLUSTERS, UPDATE = "compressbench_codebook", "compressbench_clusters", "compressbench_update"


@dataclass
class LayerClusters:
    """What clustering did to one layer (a row of the cluster stage's ``layers.csv``)."""

    layer: str
    kind: str  # conv | linear
    bits: int
    weights: int
    nonzero: int
    clusters: int  # shared values in use (<= 2^bits; fewer when the layer has fewer distinct weights)
    iterations: int
    rel_error: float  # ||W - W_shared|| / ||W||


def is_shared(m: nn.Module) -> bool:
    return hasattr(m, CLUSTERS) and hasattr(m, CODEBOOK)


def shared_layers(model: nn.Module) -> dict[str, nn.Module]:
    return {name: m for name, m in model.named_modules() if is_shared(m)}


def kind_of(m: nn.Module) -> str:
    return "linear" if isinstance(m, nn.Linear) else "conv"


@dataclass
class Live:
    """A layer's clustered weights in compact form: their flat positions (ascending) and clusters, both int64.
    ``project_`` works on these alone; deriving them from the full-size cluster map each step made a clustered
    AlexNet step 3.3× a plain one (scripts/bench_sharing.py), so ``ProjectShared`` keeps them between steps for
    as long as the map is the same tensor object, at the same address and version: a moved or replaced map
    (``.to()``, a reload) or an in-place change (a prune after cluster) derives them again. The one write that
    bypasses the version counter is DDP's per-forward buffer sync, which copies rank 0's map over the others':
    a no-op here, since every rank derives the same map from the same synchronised weights."""

    positions: torch.Tensor
    index: torch.Tensor
    map: weakref.ref[torch.Tensor]
    key: tuple[int, int]

    def describes(self, clusters: torch.Tensor) -> bool:
        return self.map() is clusters and self.key == _map_key(clusters)


def _map_key(clusters: torch.Tensor) -> tuple[int, int]:
    return clusters.data_ptr(), clusters._version


def live_of(clusters: torch.Tensor, positions: torch.Tensor | None = None, index: torch.Tensor | None = None) -> Live:
    """The compact view of ``clusters``: derived from it, or the given ``positions``/``index`` (already known)."""
    if positions is None or index is None:
        positions = (clusters >= 0).nonzero().squeeze(1)
        index = clusters.index_select(0, positions).long()
    return Live(positions, index, weakref.ref(clusters), _map_key(clusters))


@torch.no_grad()
def project_(m: nn.Module, resync: bool = False, live: Live | None = None) -> Live:
    """Move each shared value by its members' update since the last projection; write members as shared values.

    ``resync``: the weights did not come from an optimizer step (a loaded checkpoint): each shared value becomes
    the mean of its members as they are now. ``live``: the compact view of the cluster map from an earlier call
    (derived again where the map has changed since). Returns the compact view it used.
    """
    w = m.weight
    clusters, codebook = getattr(m, CLUSTERS), getattr(m, CODEBOOK)
    if clusters.numel() != w.numel():
        raise RuntimeError(f"a clustered {type(m).__name__} now has {w.numel()} weights, but was clustered with "
                           f"{clusters.numel()}: its shape changed after the cluster stage (structured pruning or "
                           f"low-rank after clustering). Put those stages before cluster (Han et al.'s order).")
    if live is None or not live.describes(clusters):
        live = live_of(clusters)
    flat = w.detach().reshape(-1)  # a copy where the weight is channels-last: written back whole below
    positions, index = live.positions, live.index
    members = flat.index_select(0, positions)
    if not resync:
        shared = codebook[index]
        # A member set to exactly zero while its shared value is not was pruned (a prune stage or schedule after
        # cluster): it leaves its cluster and stays zero, instead of counting as an update of -value.
        pruned = (members == 0) & (shared != 0)  # in the weight's dtype, before any cast
        if bool(pruned.any()):
            keep = ~pruned
            clusters.index_fill_(0, positions[pruned], -1)
            positions, index, members, shared = positions[keep], index[keep], members[keep], shared[keep]
            live = live_of(clusters, positions, index)  # the changed map, described at its new version
    members = members.to(codebook.dtype)
    counts = torch.bincount(index, minlength=len(codebook)).clamp_min(1).to(codebook.dtype)
    if resync:  # in float64, so members that all hold one float32 value give exactly that value back
        sums = torch.zeros(len(codebook), dtype=torch.float64, device=codebook.device)
        codebook.copy_(sums.index_add_(0, index, members.double()) / counts.double())
    else:
        step = torch.zeros_like(codebook).index_add_(0, index, members.sub_(shared))
        codebook.add_(step if getattr(m, UPDATE, "mean") == "sum" else step / counts)
    values = codebook[index].to(flat.dtype)
    if w.is_contiguous():  # flat is the weight itself: written in place
        flat.zero_().index_copy_(0, positions, values)
    else:
        w.copy_(torch.zeros_like(flat).index_copy_(0, positions, values).view(w.shape))
    return live


class ProjectShared:
    """Forward pre-hook: project the layer onto its shared values when its weight changed since the last time."""

    def __init__(self) -> None:
        self.seen: tuple[int, int] | None = None  # (data_ptr, _version) of the weight after our last write
        self.live: Live | None = None  # the compact cluster map of the last projection

    def __call__(self, m: nn.Module, args: tuple) -> None:
        w = m.weight
        if self.seen != (w.data_ptr(), w._version):
            self.live = project_(m, live=self.live)
            self.seen = (w.data_ptr(), w._version)

    def __deepcopy__(self, memo: dict) -> ProjectShared:
        # A copied module has its own weight and cluster map: nothing cached here applies to it.
        return type(self)()


class ResyncShared:
    """load_state_dict post-hook: the loaded weights define the shared values (see ``project_``)."""

    def __call__(self, m: nn.Module, incompatible_keys: object) -> None:
        project_(m, resync=True)


def _drop_hooks(m: nn.Module) -> None:
    for hooks in (m._forward_pre_hooks, m._load_state_dict_post_hooks):
        for key in [k for k, h in hooks.items() if isinstance(h, (ProjectShared, ResyncShared))]:
            del hooks[key]


def unshare_(model: nn.Module) -> nn.Module:
    """Drop every layer's sharing (hooks, codebook, clusters): a plain model with the same weights."""
    for m in shared_layers(model).values():
        _drop_hooks(m)
        for name in (CODEBOOK, CLUSTERS):
            delattr(m, name)
        m.__dict__.pop(UPDATE, None)
    return model


@torch.no_grad()
def share_(m: nn.Module, codebook: torch.Tensor, clusters: torch.Tensor, update: str = "mean") -> None:
    """Make ``m``'s weight ``codebook[clusters]`` (0 where ``clusters`` is -1) and keep it so in training."""
    if update not in UPDATES:
        raise ValueError(f"update={update!r}: one of {', '.join(UPDATES)}")
    w = m.weight
    _drop_hooks(m)  # clustering a clustered layer again replaces its sharing
    m.register_buffer(CODEBOOK, codebook.to(w.device, torch.float32).clone(), persistent=False)
    # int32, not int16: DDP broadcasts every buffer when it wraps the model, and gloo/NCCL have no int16.
    m.register_buffer(CLUSTERS, clusters.to(w.device, torch.int32).reshape(-1).clone(), persistent=False)
    setattr(m, UPDATE, update)
    m.register_forward_pre_hook(ProjectShared())
    m.register_load_state_dict_post_hook(ResyncShared())
    new = torch.zeros(w.numel(), dtype=w.dtype, device=w.device)
    live = m.compressbench_clusters >= 0
    new[live] = m.compressbench_codebook[m.compressbench_clusters[live].long()].to(w.dtype)
    w.copy_(new.view(w.shape))


@torch.no_grad()
def cluster_layer_(name: str, m: nn.Module, bits: int, init: str, iters: int, update: str,
                   generator: torch.Generator) -> LayerClusters:
    """k-means over the layer's nonzero weights into at most 2^bits shared values; zeros stay zero."""
    flat = m.weight.detach().reshape(-1).float().cpu()
    live = flat != 0
    result = kmeans_1d(flat[live], 2**bits, init=init, iters=iters, generator=generator)
    clusters = torch.full((flat.numel(),), -1, dtype=torch.int32)
    clusters[live] = result.labels.to(torch.int32)
    before = flat.clone()
    share_(m, result.centroids, clusters, update)
    after = m.weight.detach().reshape(-1).float().cpu()
    norm = float(before.norm())
    return LayerClusters(name, kind_of(m), bits, flat.numel(), int(live.sum()), len(result.centroids),
                         result.iterations, float((after - before).norm()) / norm if norm else 0.0)


def cluster_model_(model: nn.Module, bits_for: Callable[[str, nn.Module], int | None], init: str = "linear",
                   iters: int = 30, update: str = "mean", seed: int = 0) -> list[LayerClusters]:
    """Cluster every conv/linear layer for which ``bits_for(name, layer)`` gives bits (None: leave it alone)."""
    generator = torch.Generator().manual_seed(seed)
    done = []
    for name, m in prunable_layers(model).items():
        bits = bits_for(name, m)
        if bits is not None:
            done.append(cluster_layer_(name, m, bits, init, iters, update, generator))
    return done


@torch.no_grad()
def distinct_values(model: nn.Module) -> dict[str, int]:
    """Distinct nonzero weight values of every conv/linear layer (the invariant clustering promises)."""
    out = {}
    for name, m in prunable_layers(model).items():
        w = m.weight.detach()
        out[name] = int(torch.unique(w[w != 0]).numel())
    return out


def sync_(model: nn.Module) -> None:
    """Project every shared layer now (a forward pass would do it; readers of raw weights call this first)."""
    for m in shared_layers(model).values():
        for hook in m._forward_pre_hooks.values():
            if isinstance(hook, ProjectShared):
                hook(m, ())


class SharingState:
    """Weight sharing as ``runtimes.eager`` saves it: per shared layer its codebook, clusters and update rule
    (the rule as a 0/1 tensor, so the file stays tensors only); loading re-attaches the hooks."""

    name = "weight_sharing"
    encodes_itself = True  # the Deep Compression file (cluster / encode rows) is its encoding

    def attached(self, module: nn.Module) -> bool:
        return bool(shared_layers(module))

    def capture(self, module: nn.Module) -> dict[str, torch.Tensor] | None:
        out = {}
        for layer, m in shared_layers(module).items():
            out[f"{layer}.codebook"] = getattr(m, CODEBOOK)
            out[f"{layer}.clusters"] = getattr(m, CLUSTERS)
            out[f"{layer}.update_sum"] = torch.tensor(getattr(m, UPDATE, "mean") == "sum")
        return out or None

    def restore(self, module: nn.Module, tensors: dict[str, torch.Tensor]) -> None:
        for key in tensors:
            if key.endswith(".codebook"):
                layer = key[: -len(".codebook")]
                update = "sum" if bool(tensors[f"{layer}.update_sum"]) else "mean"
                share_(module.get_submodule(layer), tensors[key], tensors[f"{layer}.clusters"], update)

    def settle(self, module: nn.Module) -> None:
        sync_(module)

    def metrics(self, module: nn.Module) -> dict[str, int]:
        shared = shared_layers(module)
        if not shared:
            return {}
        distinct = distinct_values(module)
        return {"distinct_values_max": max(distinct[name] for name in shared)}


register_state(SharingState())
