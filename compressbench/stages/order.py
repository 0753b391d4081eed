"""Chain order: what each stage kind needs from the model reaching it, and what it hands on (``StageKind``'s
``needs_fp32``, ``makes`` and ``does``, declared with each kind).

A model goes down a chain in one of two forms: an fp32 PyTorch module (``FP32``), which a stage can train, prune,
cluster, factorize, encode, quantize or distill from; or a model on a deployment runtime (``DEPLOYED``: int8
kernels, an fp16/bf16 cast, ONNX Runtime, OpenVINO), which later stages can only measure or export. ``validate``
checks a whole chain against the kinds' declarations before any work (``check_order``), so ``[train, quantize, prune]`` fails
in the first second instead of after training; the stages still refuse a wrong input when called by hand
(``runtimes.as_module``). Every shipped kind declares its place (``tests/unit/test_plan_checks.py`` holds new
kinds to it). Imports no torch: ``precheck`` runs it.
"""
from __future__ import annotations

from compressbench.config import BadValue, StageConfig
from compressbench.stages.kind import DEPLOYED, FP32, StageKind


def _kind(cfg: StageConfig) -> StageKind:
    from compressbench.stages import STAGES  # the registry imports every stage module, this one among them

    return STAGES.get(cfg.stage)


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
        kind = _kind(cfg)
        if kind.needs(cfg) and origin is not None:
            fix = f"put '{name}' before '{origin}'" + (", or drop one of them" if stages[origin].stage == cfg.stage
                                                         else "")
            raise BadValue("chain", list(chain), f"'{name}' (kind {cfg.stage}) {kind.does}, but the model leaving "
                           f"{_made_by(origin, stages[origin])} runs on a deployment runtime, which later stages "
                           f"can only measure or export; {fix}")
        made = kind.hands_on(cfg, FP32 if origin is None else DEPLOYED)
        origin = None if made == FP32 else origin or name
        deployed_by[name] = origin
    wanted = [(f"{name}.after", getattr(cfg, "after", None), f"'{name}' (kind {cfg.stage}) {_kind(cfg).does}")
              for name, cfg in analyses.items() if _kind(cfg).needs(cfg)]
    for key, stage, why in [*wanted, ("measure.reference", reference, "the reference of every ratio is fp32")]:
        origin = deployed_by.get(stage)
        if origin is not None:
            raise BadValue(key, stage, f"a stage whose model is fp32: {why}, but the model leaving '{stage}' runs on "
                           f"a deployment runtime (deployed by {_made_by(origin, stages[origin])}); name a stage "
                           f"before '{origin}'")
    return deployed_by
