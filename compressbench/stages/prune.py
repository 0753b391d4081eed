"""The ``prune`` stage kind: unstructured (magnitude, random) or structured (l1_filter, taylor) pruning on a
one-shot, iterative or gradual (AGP) schedule, with the achieved ratios in every unit and a verified sparse
encoding of the result (``encoded_bytes``). The methods live in ``compressbench.techniques.pruning``.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from compressbench.config import BadValue, StageConfig, TrainConfig, check
from compressbench.results import csv_bytes
from compressbench.stages import StageResult, register_stage
from compressbench.stages.kind import FP32
from compressbench.techniques.pruning.choices import KEEP_ROUNDINGS, SCHEDULES
from compressbench.techniques.pruning.criteria import PRUNE_CRITERIA, methods

if TYPE_CHECKING:
    from torch import nn

    from compressbench.engine.env import StageEnv
    from compressbench.runtimes import Deployable
    from compressbench.techniques.pruning.layers import Spec

@dataclass
class RetrainConfig(TrainConfig):
    """Training inside a prune stage: after each iterative round, or the run the AGP schedule prunes during.
    Every ``train`` option applies; the defaults are a short finetune that keeps the last weights (the best
    epoch by validation could be a less sparse one under AGP)."""

    epochs: int = 1
    batch_size: int = 64
    lr: float = 0.01
    keep: str = "last"

    def __post_init__(self) -> None:
        try:
            super().__post_init__()
        except BadValue as e:
            raise e.under("retrain") from None


@dataclass
class PruneConfig(StageConfig):
    stage: str = "prune"
    method: str = "magnitude"  # a PRUNE_CRITERIA name: magnitude | random (zero weights) | l1_filter | taylor
    amount: float = 0.5  # fraction of `amount_of` to prune: 0 <= amount < 1
    amount_of: str | None = None  # weights | channels; null = the method's unit (it must match the method)
    # layer: each layer loses `amount` | global: one ranking over all layers together | null: the method's
    # papers' choice (the criterion's ``scope``). The one source of this default: the YAML leaves it unset.
    scope: str | None = None
    # How a channel count is rounded (structured methods; weight counts are rounded to nearest). floor keeps
    # int(c * (1 - p)) channels, as Li et al. 2017 and torch-pruning's pruners do; nearest removes round(c * p)
    # (our earlier behaviour: 58 of 64 filters kept at p=0.1 where the paper keeps 57). floor is the default for
    # every l1_filter/taylor use, not only the shipped recipes, so one `amount` means one width everywhere.
    keep_rounding: str = "floor"
    layer_amounts: dict[str, float] = field(default_factory=dict)  # layer/stage/pattern → amount; first match
    ignore: list[str] = field(default_factory=list)  # layers never pruned (structured: the classifier never is)
    schedule: str = "oneshot"  # oneshot | iterative (rounds of prune → retrain) | agp (gradual, in training)
    rounds: int = 3  # iterative: prune → retrain rounds
    retrain: RetrainConfig = field(default_factory=RetrainConfig)  # iterative and agp training
    agp_start: float = 0.0  # agp: fraction of the retraining steps before pruning starts
    agp_end: float = 0.75  # agp: fraction of the steps where the final amount is reached
    agp_frequency: int = 10  # agp: optimizer steps between pruning events
    taylor_batches: int = 8  # taylor: training batches whose gradients rank the channels
    taylor_batch_size: int = 64
    encode: bool = True  # write the verified sparse encoding (weights.cbsp) and record encoded_bytes

    def __post_init__(self) -> None:
        check(self.method in PRUNE_CRITERIA, "method", self.method, f"one of {', '.join(PRUNE_CRITERIA.names())}")
        criterion = PRUNE_CRITERIA.get(self.method)
        unit = criterion.unit
        check(0 <= self.amount < 1, "amount", self.amount, f"a fraction 0 <= amount < 1 of the {unit} to prune")
        check(self.amount_of in (None, unit), "amount_of", self.amount_of,
              f"method {self.method} prunes {unit}: set amount_of={unit} (or leave it null); to prune "
              f"{' or '.join(methods('channels' if unit == 'weights' else 'weights'))}")
        self.amount_of = unit
        self.scope = criterion.scope if self.scope is None else self.scope
        check(self.scope in ("layer", "global"), "scope", self.scope,
              f"layer or global (or null: the method's default, {self.method} → {criterion.scope})")
        check(self.keep_rounding in KEEP_ROUNDINGS, "keep_rounding", self.keep_rounding,
              f"one of {', '.join(KEEP_ROUNDINGS)} (floor keeps int(channels * (1 - amount)), as Li et al.)")
        for key, value in self.layer_amounts.items():
            check(0 <= value < 1, f"layer_amounts.{key}", value, f"a fraction 0 <= amount < 1 of the {unit}")
        check(self.schedule in SCHEDULES, "schedule", self.schedule, f"one of {', '.join(SCHEDULES)}")
        check(self.rounds >= 1, "rounds", self.rounds, ">= 1")
        if self.schedule == "agp":
            check(unit == "weights", "schedule", self.schedule, f"agp masks weights during training, so it "
                  f"works with magnitude or random; for {self.method} use schedule=iterative")
            check(self.retrain.epochs >= 1, "retrain.epochs", self.retrain.epochs, ">= 1 (agp prunes while training)")
            check(self.retrain.keep == "last", "retrain.keep", self.retrain.keep,
                  "last with schedule=agp (an earlier, less sparse epoch must not be kept)")
        check(0 <= self.agp_start < self.agp_end <= 1, "agp_end", self.agp_end,
              f"agp_start ({self.agp_start}) < agp_end <= 1, both fractions of the training steps")
        check(self.agp_frequency >= 1, "agp_frequency", self.agp_frequency, ">= 1 optimizer steps")
        check(self.taylor_batches >= 1, "taylor_batches", self.taylor_batches, ">= 1")
        check(self.taylor_batch_size >= 1, "taylor_batch_size", self.taylor_batch_size, ">= 1")

    @property
    def spec(self) -> Spec:
        from compressbench.techniques.pruning.layers import Spec

        scope = self.scope or PRUNE_CRITERIA.get(self.method).scope  # resolved in __post_init__ already
        return Spec(self.amount, dict(self.layer_amounts), tuple(self.ignore), scope, self.keep_rounding)


def check_layers(cfg: PruneConfig, model: nn.Module, node: str = "prune") -> None:
    """Fail, naming the key, when ``ignore`` or ``layer_amounts`` names a layer the model does not have."""
    from compressbench.techniques.pruning.layers import check_selectors

    check_selectors(model, f"{node}.ignore", cfg.ignore)
    check_selectors(model, f"{node}.layer_amounts", cfg.layer_amounts)


@register_stage("prune", PruneConfig, distributed=True, needs_fp32=True, makes=FP32, does="prunes fp32 weights",
                model_check=check_layers)
def prune(artifact: Deployable, cfg: PruneConfig, env: StageEnv) -> StageResult:
    """Prune the model as ``cfg`` says; record what was achieved and the verified encoded size.

    Registered as distributed because the iterative and agp schedules train (``engine.fit``): under torchrun
    every rank runs it, makes the same pruning decisions (rank 0's Taylor scores are broadcast) and only rank 0's
    files are kept.
    """
    import torch

    from compressbench.engine.train import train_module
    from compressbench.infra import distributed
    from compressbench.runtimes import Eager, as_module
    from compressbench.runtimes.eager import module_device
    from compressbench.techniques.pruning import structured, unstructured
    from compressbench.techniques.pruning.encoding import encode_verified
    from compressbench.techniques.pruning.layers import classifier_name, prunable_layers
    from compressbench.techniques.pruning.schedules import GradualPruning
    from compressbench.techniques.pruning.stats import achieved, snapshot

    model = as_module(artifact, env.name)
    check_layers(cfg, model, env.name)  # before any pruning: a wrong layer name costs nothing
    example = env.example_batch(1, module_device(model))
    classifier = classifier_name(model, example)
    before = snapshot(model, example, classifier)
    original = structured.out_channels(model)
    generator = torch.Generator().manual_seed(env.seed)
    out = StageResult(artifact)

    def apply(m: nn.Module, fraction: float, round_: int = 0) -> Any:
        if cfg.amount_of == "weights":
            return unstructured.prune_weights_(m, cfg.spec, fraction, cfg.method, generator)
        batches: Any = ()
        if PRUNE_CRITERIA.get(cfg.method).needs_gradients:
            loader = env.train_loader(cfg.taylor_batch_size, augment=False)
            loader.set_epoch(round_)
            batches = itertools.islice(loader, cfg.taylor_batches)
        return structured.prune_channels_(m, cfg.spec, example, classifier, method=cfg.method,
                                          fraction=fraction, original=original, batches=batches,
                                          agree=distributed.broadcast if env.dist.enabled else None)

    if cfg.schedule == "oneshot":
        apply(model, 1.0)
    elif cfg.schedule == "iterative":
        model = iterative(model, cfg, env, apply, lambda m: achieved(before, snapshot(m, example, classifier)), out)
    else:
        gradual = GradualPruning(apply, prunable_layers(model), cfg.agp_start, cfg.agp_end, cfg.agp_frequency)
        fitted = train_module(model, cfg.retrain, env, callbacks=(gradual,))
        model = fitted.model
        out.history += fitted.history
        out.record.update(fitted.record)
        apply(model, 1.0)  # idempotent when the schedule reached its end (it always does); a guarantee
        out.files["agp_events.csv"] = csv_bytes([{"step": s, "fraction_of_amount": f} for s, f in gradual.events])
        out.record["agp_events"] = len(gradual.events)

    out.record.update(amount=cfg.amount, amount_of=cfg.amount_of, scope=cfg.scope, schedule=cfg.schedule,
                      keep_rounding=cfg.keep_rounding if cfg.amount_of == "channels" else None,
                      **achieved(before, snapshot(model, example, classifier)))
    out.files["layers.csv"] = layer_table(model, original)
    if cfg.encode:
        encoded, ok = encode_verified(model.state_dict())
        if not ok:  # an unverified size is never reported
            raise RuntimeError("the sparse encoding did not decode back to the pruned weights; this is a bug in "
                               "compressbench.techniques.pruning.encoding; set prune.encode=false to skip it meanwhile")
        out.files["weights.cbsp"] = encoded.data
        out.record.update(encoded_bytes=len(encoded.data), encode_verified=ok,
                          encoded_dense_bytes=encoded.dense_bytes,
                          encoded_layouts=" ".join(f"{k}:{v}" for k, v in sorted(encoded.layouts.items())))
    out.artifact = Eager(model, artifact.arch, artifact.runtime)
    return out


def iterative(model: nn.Module, cfg: PruneConfig, env: StageEnv, apply: Callable[..., Any],
              progress: Callable[[nn.Module], dict[str, float]], out: StageResult) -> nn.Module:
    """``cfg.rounds`` of prune → retrain; ``rounds.csv`` says what each round achieved.

    Each round's training resumes from its own checkpoint slot (``round<k>_``), so an interrupted stage replays
    the finished rounds' pruning (deterministic) and picks up their trained weights instead of confusing one
    round's state with another's.
    """
    from compressbench.engine.train import train_module
    from compressbench.techniques.pruning.schedules import iterative_fractions

    rounds, checkpoints = [], []
    for k, fraction in enumerate(iterative_fractions(cfg.rounds)):
        apply(model, fraction, k)
        slot = f"round{k + 1}_"
        checkpoints.append(env.checkpoint(slot))
        fitted = train_module(model, cfg.retrain, env, slot=slot)
        model = fitted.model
        out.history += fitted.history
        out.record.update(fitted.record)
        rounds.append({"round": k + 1, "fraction_of_amount": fraction, **progress(model),
                       "val_acc": fitted.history[-1]["val_acc"] if fitted.history else None})
    out.files["rounds.csv"] = csv_bytes(rounds)
    for checkpoint in checkpoints:  # the stage is complete: its cache entry keeps the model, not these
        checkpoint.clear()
    return model


def layer_table(model: nn.Module, original: dict[str, int]) -> bytes:
    """``layers.csv``: per conv/linear layer, output channels before/after and the weights left nonzero."""
    import torch

    from compressbench.techniques.pruning.layers import prunable_layers

    rows = []
    for name, m in prunable_layers(model).items():
        w = m.weight.detach()
        nonzero = int(torch.count_nonzero(w))
        rows.append({"layer": name, "out_channels_before": original.get(name), "out_channels": int(w.shape[0]),
                     "weights": w.numel(), "nonzero_weights": nonzero, "sparsity": 1 - nonzero / max(w.numel(), 1)})
    return csv_bytes(rows)
