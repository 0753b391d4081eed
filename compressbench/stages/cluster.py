"""The ``cluster`` stage kind: k-means weight sharing (Han et al. 2016 §3), per layer 2^bits shared values.

Only the surviving weights of a pruned layer are clustered; zeros stay zero, so sparsity is unchanged. A
later ``train`` stage (a finetune) trains the shared values, not the single weights (``deepcompression.sharing``),
so every clustered layer still holds at most 2^bits distinct nonzero values afterwards. The dense artifact does
not shrink (``size_bytes`` stays put); the codebook form does: ``encoded_bytes`` is the verified size of the
Deep Compression file of this model (the ``encode`` stage writes it with its per-layer table).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from compressbench.config import BadValue, Experiments, StageConfig, check
from compressbench.results import csv_bytes
from compressbench.stages import StageResult, register_stage
from compressbench.stages.kind import FP32
from compressbench.techniques.deepcompression.choices import KMEANS_INITS, SHARING_UPDATES

if TYPE_CHECKING:
    from torch import nn

    from compressbench.config import Plan
    from compressbench.engine.env import StageEnv
    from compressbench.runtimes import Deployable


@dataclass
class ClusterConfig(StageConfig):
    stage: str = "cluster"
    conv_bits: int = 8  # 2^bits shared values per conv layer (Han et al.'s AlexNet: 8)
    linear_bits: int = 5  # ... per linear layer (AlexNet: 5; their LeNets: 6 and 5)
    layer_bits: dict[str, int] = field(default_factory=dict)  # layer / parent / glob → bits; first match wins
    ignore: list[str] = field(default_factory=list)  # layers left unclustered (kept float32)
    init: str = "linear"  # linear | density | random | kmeans++ (Han et al.: linear works best)
    iters: int = 30  # Lloyd iterations at most (stops earlier when no weight changes cluster)
    update: str = "mean"  # a later finetune moves each shared value by its members' mean or sum (Han eq. 3) update
    # Record encoded_bytes: the verified Deep Compression file of the clustered model (relative-index bits of the
    # chain's next encode stage, else 8 conv / 5 linear).
    encode: bool = True

    def __post_init__(self) -> None:
        for key in ("conv_bits", "linear_bits"):
            check(1 <= getattr(self, key) <= 8, key, getattr(self, key), "1..8 bits (2 to 256 shared values)")
        for name, bits in self.layer_bits.items():
            check(1 <= bits <= 8, f"layer_bits.{name}", bits, "1..8 bits (2 to 256 shared values)")
        check(self.init in KMEANS_INITS, "init", self.init, f"one of {', '.join(KMEANS_INITS)}")
        check(self.iters >= 1, "iters", self.iters, ">= 1")
        check(self.update in SHARING_UPDATES, "update", self.update,
              "mean (each shared value moves by its members' mean update: the finetune's lr keeps its meaning) "
              "or sum (Han et al.'s eq. 3: the true gradient of the shared value; use a much smaller lr)")

    def bits_for(self, name: str, m: nn.Module) -> int | None:
        from compressbench.techniques.pruning.layers import by_layer, is_ignored

        if is_ignored([name], self.ignore):
            return None
        return by_layer(name, m, self.layer_bits, self.linear_bits, self.conv_bits)


def encode_bits(plan: Plan, name: str) -> Callable[[str, nn.Module], int]:
    """Relative-index bits for this stage's ``encoded_bytes``: those of the chain's next encode stage, so the
    cluster row and the encode row describe one file format; else Han et al.'s 8 (conv) / 5 (linear)."""
    later = [plan.stages[n] for n in plan.chain[plan.chain.index(name) + 1:] if n in plan.stages]
    encode = next((s for s in later if s.stage == "encode"), None)
    if encode is not None:
        return encode.index_bits
    from torch import nn

    return lambda layer, m: 5 if isinstance(m, nn.Linear) else 8


def check_layers(cfg: ClusterConfig, model: nn.Module, node: str = "cluster") -> None:
    """Fail, naming the key, when ``layer_bits`` or ``ignore`` names a layer the model does not have."""
    from compressbench.techniques.pruning.layers import check_selectors

    check_selectors(model, f"{node}.layer_bits", cfg.layer_bits)
    check_selectors(model, f"{node}.ignore", cfg.ignore)


def check_update(cfg: ClusterConfig, name: str, plan: Plan, experiments: Experiments) -> None:
    """``update=sum`` is Han et al.'s eq. 3 only under plain SGD (momentum is fine: it is linear) without
    weight decay: summing the members' updates multiplies each one's decay, and AdamW's per-weight steps, by
    the cluster's size. Checked against every train stage after this one."""
    if cfg.update != "sum":
        return
    for other in plan.chain[plan.chain.index(name) + 1:]:
        later = plan.stages[other]
        if later.stage == "train" and (later.optimizer != "sgd" or later.weight_decay != 0):
            raise BadValue(f"{name}.update", cfg.update,
                           f"mean here, since {other} trains with optimizer={later.optimizer}, weight_decay="
                           f"{later.weight_decay}: a sum of the members' updates would apply the decay (or "
                           f"AdamW's step) once per member; or set {other}.optimizer=sgd "
                           f"{other}.weight_decay=0")


@register_stage("cluster", ClusterConfig, needs_fp32=True, makes=FP32, does="clusters fp32 weights",
                model_check=check_layers, plan_check=check_update)
def cluster(artifact: Deployable, cfg: ClusterConfig, env: StageEnv) -> StageResult:
    """Share weights layer by layer; record bits, shared values in use and the codebook form's size."""
    from compressbench.runtimes import Eager, as_module
    from compressbench.techniques.deepcompression import sharing
    from compressbench.techniques.deepcompression.fileformat import decode_state, encode_state, same_state
    from compressbench.techniques.pruning.layers import prunable_layers

    model = as_module(artifact, env.name)
    check_layers(cfg, model, env.name)
    layers = sharing.cluster_model_(model, cfg.bits_for, cfg.init, cfg.iters, cfg.update, seed=env.seed)
    distinct = sharing.distinct_values(model)
    limits = {r.layer: 2**r.bits for r in layers}
    over = [n for n, limit in limits.items() if distinct[n] > limit]
    if over:  # an invariant, checked where it is made
        raise RuntimeError(f"clustering left more than 2^bits distinct values in {', '.join(over)}; this is a bug")
    rows = [{**asdict(r), "distinct_values": distinct[r.layer]} for r in layers]
    out = StageResult(Eager(model, artifact.arch, artifact.runtime), files={"layers.csv": csv_bytes(rows)})
    out.record.update(conv_bits=cfg.conv_bits, linear_bits=cfg.linear_bits, init=cfg.init, update=cfg.update,
               layers_clustered=len(layers), distinct_values_max=max(distinct[r.layer] for r in layers) if layers
               else None, shared_values_total=sum(r.clusters for r in layers),
               cluster_rel_error_max=max((r.rel_error for r in layers), default=None))
    if cfg.encode:
        state = model.state_dict()
        index_bits = encode_bits(env.plan, env.name)
        encoded = encode_state(state, {f"{n}.weight": index_bits(n, m) for n, m in prunable_layers(model).items()})
        back = decode_state(encoded.data)
        ok = same_state(back, state)
        if not ok:  # an unverified size is never reported
            raise RuntimeError("the Deep Compression file did not decode back to the clustered weights; this is a "
                               "bug in compressbench.techniques.deepcompression.fileformat; set cluster.encode=false meanwhile")
        out.files["model.cbdc"] = encoded.data
        out.record.update(encoded_bytes=len(encoded.data), encode_verified=ok)
    return out

