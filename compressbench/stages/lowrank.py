"""The ``lowrank`` stage kind: truncated-SVD factorization of Linear and conv layers into two thinner layers.

Params and MACs fall for real (the layers are replaced, not masked) and the core times the result against the
reference as usual. Rank by ``method``: ``energy`` (the smallest rank keeping that fraction of Σ s²), ``ratio``
(keep that fraction of each layer's weights), ``rank`` (at most that rank), or per layer (``layer_ranks``).
Layers whose factorization would hold no fewer weights are skipped and listed (``lowrank_skipped`` and
``layers.csv``). A ``train`` stage after it finetunes the factors as usual. The factorization itself is in
``deepcompression.lowrank``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from compressbench.config import BadValue, StageConfig, check
from compressbench.results import csv_bytes
from compressbench.stages import StageResult, register_stage
from compressbench.stages.kind import FP32
from compressbench.techniques.deepcompression.choices import LOWRANK_METHODS, LOWRANK_SCHEMES

if TYPE_CHECKING:
    from torch import nn

    from compressbench.engine.env import StageEnv
    from compressbench.runtimes import Deployable


@dataclass
class LowRankConfig(StageConfig):
    stage: str = "lowrank"
    method: str = "energy"  # energy | ratio | rank: how each layer's rank is chosen
    energy: float = 0.9  # method energy: fraction of the squared singular values kept, 0 < energy <= 1
    ratio: float = 0.5  # method ratio: fraction of each layer's weights the two factors hold, 0 < ratio < 1
    rank: int = 8  # method rank: every layer at most this rank
    layer_ranks: dict[str, int] = field(default_factory=dict)  # layer / parent / glob → rank; first match wins
    conv_scheme: str = "channel"  # channel: k×k conv to r channels, then 1×1 | spatial: k×1 then 1×k
    ignore: list[str] = field(default_factory=list)  # layers never factorized

    def __post_init__(self) -> None:
        check(self.method in LOWRANK_METHODS, "method", self.method, f"one of {', '.join(LOWRANK_METHODS)}")
        check(0 < self.energy <= 1, "energy", self.energy, "a fraction 0 < energy <= 1 of the squared singular values")
        check(0 < self.ratio < 1, "ratio", self.ratio, "a fraction 0 < ratio < 1 of each layer's weights")
        check(self.rank >= 1, "rank", self.rank, ">= 1")
        check(self.conv_scheme in LOWRANK_SCHEMES, "conv_scheme", self.conv_scheme,
              f"one of {', '.join(LOWRANK_SCHEMES)}")
        for name, rank in self.layer_ranks.items():
            check(rank >= 1, f"layer_ranks.{name}", rank, ">= 1")


def check_layers(cfg: LowRankConfig, model: nn.Module, node: str = "lowrank") -> None:
    """Fail when a named layer does not exist, or its rank exceeds the layer's smallest dimension."""
    from compressbench.techniques.deepcompression.lowrank import max_rank
    from compressbench.techniques.pruning.layers import check_selectors, matches, prunable_layers

    check_selectors(model, f"{node}.layer_ranks", cfg.layer_ranks)
    check_selectors(model, f"{node}.ignore", cfg.ignore)
    for name, m in prunable_layers(model).items():
        selector = next((s for s in cfg.layer_ranks if matches(s, name)), None)
        if selector is None:
            continue
        limit = max_rank(m, cfg.conv_scheme)
        if limit is None:
            raise BadValue(f"{node}.layer_ranks.{selector}", cfg.layer_ranks[selector],
                           f"layer {name} cannot be factorized (a grouped or not 2-D conv); leave it out")
        if cfg.layer_ranks[selector] > limit:
            shape = "x".join(str(d) for d in m.weight.shape)
            raise BadValue(f"{node}.layer_ranks.{selector}", cfg.layer_ranks[selector],
                           f"at most {limit} for layer {name} ({shape}, scheme {cfg.conv_scheme}): the "
                           f"smallest dimension of its matrix")


# Layer names change here (``features.0`` becomes ``features.0.0`` and ``features.0.1``), so names in later stages'
# options refer to the factorized model (the runner's layer-name check stops here).
@register_stage("lowrank", LowRankConfig, needs_fp32=True, makes=FP32, does="factorizes fp32 layers",
                changes_layer_names=True, model_check=check_layers)
def lowrank(artifact: Deployable, cfg: LowRankConfig, env: StageEnv) -> StageResult:
    """Factorize the model's layers as ``cfg`` says; record what fell and which layers were skipped."""
    from compressbench.models.counting import count_macs
    from compressbench.runtimes import Eager, as_module
    from compressbench.runtimes.eager import module_device
    from compressbench.techniques.deepcompression.lowrank import factorize_, params_saved

    model = as_module(artifact, env.name)
    check_layers(cfg, model, env.name)
    example = env.example_batch(1, module_device(model))
    params_before = sum(p.numel() for p in model.parameters())
    macs_before = count_macs(model, example)[0]
    decisions = factorize_(model, method=cfg.method, energy=cfg.energy, ratio=cfg.ratio, rank=cfg.rank,
                           layer_ranks=cfg.layer_ranks, conv_scheme=cfg.conv_scheme, ignore=cfg.ignore)
    macs_after = count_macs(model, example)[0]
    done = [d for d in decisions if d.status == "factorized"]
    skipped = [d for d in decisions if d.status != "factorized"]
    record = dict(rank_method=cfg.method, conv_scheme=cfg.conv_scheme, layers_factorized=len(done),
               layers_skipped=len(skipped), lowrank_skipped=" ".join(d.layer for d in skipped) or None,
               params_removed_fraction=1 - sum(p.numel() for p in model.parameters()) / params_before,
               factorized_params_saved=params_saved(done) if done else 0.0,
               macs_reduction=macs_before / macs_after if macs_after else None,
               energy_kept_min=min((d.energy_kept for d in done), default=None),
               rank_mean=sum(d.rank for d in done) / len(done) if done else None)
    return StageResult(Eager(model, artifact.arch, artifact.runtime), record,
                       files={"layers.csv": csv_bytes([asdict(d) for d in decisions])})
