"""Chain order: what each stage kind needs from the model reaching it, and what it hands on — one row per kind.

A model goes down a chain in one of two forms: an fp32 PyTorch module (``FP32``), which a stage can train, prune,
cluster, factorize, encode, quantize or distill from; or a model on a deployment runtime (``DEPLOYED``: int8
kernels, an fp16/bf16 cast, ONNX Runtime, OpenVINO), which later stages can only measure or export. ``validate``
checks a whole chain against ``FLOWS`` before any work (``check_order``), so ``[train, quantize, prune]`` fails
in the first second instead of after training; the stages still refuse a wrong input when called by hand
(``runtimes.as_module``). Every registered kind has a row (``tests/unit/test_plan_checks.py`` holds new kinds to
it). Imports no torch: ``precheck`` runs it.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from compressbench.config import BadValue, StageConfig

FP32 = "fp32"  # an fp32 module (``runtimes.Eager``)
DEPLOYED = "deployed"  # a model on a deployment runtime
SAME = "same"  # hands on what it got, unchanged


@dataclass(frozen=True)
class Flow:
    """A stage kind's place in a chain. ``needs_fp32`` and ``makes`` are values or functions of the stage's
    config (``makes``: FP32, DEPLOYED or SAME)."""

    needs_fp32: bool | Callable[[Any], bool]
    makes: str | Callable[[Any], str]
    does: str  # what it does with the incoming model, for the error message

    def needs(self, cfg: StageConfig) -> bool:
        return self.needs_fp32(cfg) if callable(self.needs_fp32) else self.needs_fp32

    def output(self, cfg: StageConfig, incoming: str) -> str:
        made = self.makes(cfg) if callable(self.makes) else self.makes
        return incoming if made == SAME else made


FLOWS: dict[str, Flow] = {
    "train": Flow(True, FP32, "trains fp32 weights"),
    "prune": Flow(True, FP32, "prunes fp32 weights"),
    "cluster": Flow(True, FP32, "clusters fp32 weights"),
    "lowrank": Flow(True, FP32, "factorizes fp32 layers"),
    "encode": Flow(True, FP32, "encodes fp32 weights"),  # and hands on the decoded fp32 model
    "sensitivity": Flow(True, SAME, "prunes copies of fp32 layers"),
    # weight_bits keeps an fp32 module (its weights snapped to a low-bit grid); every other method deploys.
    "quantize": Flow(True, lambda cfg: FP32 if cfg.method == "weight_bits" else DEPLOYED, "quantizes an fp32 model"),
    # Distilling reads the incoming model as its teacher (a scratch student, loss=[], reads nothing); the student
    # it hands on is fp32.
    "distill": Flow(lambda cfg: bool(cfg.loss), FP32, "distills from the fp32 model it gets"),
    "export": Flow(False, SAME, "exports any model"),
}


def _flow(cfg: StageConfig) -> Flow:
    return FLOWS.get(cfg.stage, Flow(False, SAME, ""))  # a kind without a row is not checked


def _made_by(name: str, cfg: StageConfig) -> str:
    method = getattr(cfg, "method", None)
    return f"'{name}' (kind {cfg.stage}{f', method {method}' if method else ''})"


def check_order(chain: list[str], stages: dict[str, StageConfig], analyses: dict[str, StageConfig],
                reference: str | None) -> dict[str, str | None]:
    """Raise BadValue, naming the fix, where a stage, an analysis (its ``after`` resolved) or the reference would
    get a deployed model it cannot use. Returns, per stage, the stage that deployed the model it hands on (None:
    an fp32 model): ``Plan.deployed_by``, which a distill stage checks its teacher stage against."""
    deployed_by: dict[str, str | None] = {}
    origin: str | None = None  # the initial model (built, or loaded by init_from) is fp32
    for name in chain:
        cfg = stages[name]
        flow = _flow(cfg)
        if flow.needs(cfg) and origin is not None:
            fix = f"put '{name}' before '{origin}'" + (", or drop one of them" if stages[origin].stage == cfg.stage
                                                         else "")
            raise BadValue("chain", list(chain), f"'{name}' (kind {cfg.stage}) {flow.does}, but the model leaving "
                           f"{_made_by(origin, stages[origin])} runs on a deployment runtime, which later stages "
                           f"can only measure or export; {fix}")
        made = flow.output(cfg, FP32 if origin is None else DEPLOYED)
        origin = None if made == FP32 else origin or name
        deployed_by[name] = origin
    wanted = [(f"{name}.after", getattr(cfg, "after", None), f"'{name}' (kind {cfg.stage}) {_flow(cfg).does}")
              for name, cfg in analyses.items() if _flow(cfg).needs(cfg)]
    for key, stage, why in [*wanted, ("measure.reference", reference, "the reference of every ratio is fp32")]:
        origin = deployed_by.get(stage)
        if origin is not None:
            raise BadValue(key, stage, f"a stage whose model is fp32: {why}, but the model leaving '{stage}' runs on "
                           f"a deployment runtime (deployed by {_made_by(origin, stages[origin])}); name a stage "
                           f"before '{origin}'")
    return deployed_by
