"""The ``quantize`` stage kind: int8 (static PTQ, dynamic, QAT), fp16/bf16 casts and low-bit weights.

The stage returns a deployable on the runtime a user would deploy — eager int8 kernels (FX), compiled
PT2E int8, or ONNX Runtime — and ``measure`` re-evaluates accuracy and times it there, against the fp32
reference on the same runtime family. Beside it the stage writes ``fallback.csv`` (every layer/op: int8, float
and why, fused) and the deployable files, and records ``speedup_vs_best_fp32``: the int8 model against the
fastest fp32 runtime it timed, paired (DESIGN.md §6). Method code lives in ``compressbench.techniques.quantization``.
"""
from __future__ import annotations

import dataclasses
import importlib.util
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from compressbench.config import BadValue, Experiments, StageConfig, check
from compressbench.results import csv_bytes
from compressbench.stages import StageResult, register_stage
from compressbench.stages.kind import DEPLOYED, FP32
from compressbench.techniques.quantization.methods import QUANTIZERS, backends, methods

if TYPE_CHECKING:
    import torch
    from torch import nn

    from compressbench.config import Plan
    from compressbench.engine.env import StageEnv
    from compressbench.runtimes import Deployable, Eager

__all__ = ["QuantizeConfig", "quantize"]


@dataclass
class QuantizeConfig(StageConfig):
    stage: str = "quantize"
    method: str = "static_int8"  # static_int8 | dynamic_int8 | qat | fp16 | bf16 | weight_bits
    backend: str = "auto"  # auto (eager for fp16/bf16/weight_bits, else fx) | fx | pt2e | onnxruntime | eager
    observer: str = "auto"  # activation ranges (static_int8): see OBSERVERS; auto = histogram, minmax for ORT
    per_channel: bool = True  # int8 weights per output channel (pt2e supports only per-channel)
    calibration_batches: int = 8  # training batches (no augmentation) that calibrate static int8
    calibration_batch_size: int = 64
    skip: list[str] = field(default_factory=list)  # module names (and their children) kept in float
    weight_bits: int = 8  # method weight_bits: 8 | 4 | 2
    # RUNTIMES names, for speedup_vs_best_fp32; null = every fp32 runtime installed here (resolved by check_routes:
    # the runtimes import torch, so they are checked after every torch-free check). Not keyed: it says what the
    # output is timed against, not what the model is.
    fp32_routes: list[str] | None = None
    # Training of qat and weight_bits (fake quantization, straight-through estimator); weight_bits with
    # epochs=0 is post-training. Cosine schedule; the best epoch on val is kept.
    epochs: int = 3
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 1e-5
    freeze_bn_epoch: int | None = None  # qat: stop updating BatchNorm statistics after this epoch
    freeze_observer_epoch: int | None = None  # qat: fix the quantization ranges after this epoch

    def __post_init__(self) -> None:
        check(self.method in methods(), "method", self.method, ", ".join(methods()))
        allowed = backends(self.method)
        check(self.backend == "auto" or self.backend in allowed, "backend", self.backend,
              f"auto or {' | '.join(allowed)} for method {self.method}")
        handler = self.handler
        if handler.observers:
            check(self.observer == "auto" or self.observer in handler.observers, "observer", self.observer,
                  f"auto or {' | '.join(handler.observers)} for {self.method} on backend {self.resolved_backend}")
        else:
            check(self.observer == "auto", "observer", self.observer,
                  f"auto: method {self.method} does not calibrate activation ranges")
        for package in handler.packages:
            check(importlib.util.find_spec(package) is not None, "backend", self.backend,
                  f'installed: {package} is missing (pip install "compressbench[{handler.extra}]")')
        check(self.per_channel or self.resolved_backend in ("fx", "onnxruntime"), "per_channel", self.per_channel,
              "true for this method/backend (only fx and onnxruntime int8 offer per-tensor weights)")
        check(self.calibration_batches >= 1, "calibration_batches", self.calibration_batches, ">= 1")
        check(self.calibration_batch_size >= 1, "calibration_batch_size", self.calibration_batch_size, ">= 1")
        check(self.weight_bits in (8, 4, 2), "weight_bits", self.weight_bits, "8, 4 or 2")
        check(self.epochs >= (1 if self.method == "qat" else 0), "epochs", self.epochs,
              ">= 1 for qat, >= 0 otherwise")
        check(self.batch_size >= 1, "batch_size", self.batch_size, ">= 1")
        check(self.optimizer in ("sgd", "adamw"), "optimizer", self.optimizer, "sgd or adamw")
        check(self.lr > 0, "lr", self.lr, "> 0")
        check(0 <= self.momentum < 1, "momentum", self.momentum, "0 <= momentum < 1")
        check(self.weight_decay >= 0, "weight_decay", self.weight_decay, ">= 0")
        for key in ("freeze_bn_epoch", "freeze_observer_epoch"):
            value = getattr(self, key)
            check(value is None or value >= 1, key, value, "null (never) or an epoch >= 1")

    @property
    def resolved_backend(self) -> str:
        return backends(self.method)[0] if self.backend == "auto" else self.backend

    @property
    def handler(self) -> Any:
        return QUANTIZERS.get(f"{self.method}/{self.resolved_backend}")

    @property
    def resolved_observer(self) -> str:
        if self.observer != "auto":
            return self.observer
        observers = self.handler.observers
        return observers[0] if observers else "histogram"


def check_routes(cfg: QuantizeConfig, name: str, plan: Plan, experiments: Experiments) -> QuantizeConfig:
    """``fp32_routes`` against the runtimes registry (which imports torch); null becomes the installed ones."""
    from compressbench.runtimes import RUNTIMES, fp32_routes

    routes = fp32_routes(installed=True) if cfg.fp32_routes is None else list(cfg.fp32_routes)
    check(set(routes) <= set(fp32_routes()), f"{name}.fp32_routes", cfg.fp32_routes,
          f"a list drawn from {', '.join(fp32_routes())} ([] skips speedup_vs_best_fp32)")
    for route in routes:
        runtime = RUNTIMES.get(route)
        check(runtime.available(), f"{name}.fp32_routes", cfg.fp32_routes,
              f"installed runtimes only: {route} needs {runtime.install_hint()}")
    return dataclasses.replace(cfg, fp32_routes=routes)


def timing_routes(cfg: QuantizeConfig) -> list[str]:
    if cfg.fp32_routes is None:  # options built in Python, not by validate
        from compressbench.runtimes import fp32_routes

        return fp32_routes(installed=True)
    return list(cfg.fp32_routes)


def check_skip(cfg: QuantizeConfig, model: nn.Module, node: str = "quantize") -> None:
    """``skip`` must name modules of the model (checked by the runner before any training)."""
    names = {n for n, _ in model.named_modules() if n}
    for name in cfg.skip:
        if name not in names:
            listed = ", ".join(sorted(n for n in names if "." not in n))
            raise BadValue(f"{node}.skip", name, f"a module of {type(model).__name__}: top-level modules "
                           f"{listed} (children as 'parent.child')")


# weight_bits keeps an fp32 module (its weights snapped to a low-bit grid); every other method deploys.
@register_stage("quantize", QuantizeConfig, needs_fp32=True, does="quantizes an fp32 model",
                makes=lambda cfg: FP32 if cfg.method == "weight_bits" else DEPLOYED, unkeyed=("fp32_routes",),
                plan_check=check_routes, routes=timing_routes, model_check=check_skip)
def quantize(artifact: Deployable, cfg: QuantizeConfig, env: StageEnv) -> StageResult:
    """Quantize the model as ``cfg`` asks, with the fallback report and the deployable files beside it.

    ``measure`` times the result against each of ``cfg.fp32_routes`` afresh on every measurement (never from
    the cache), through ``timing_routes``.
    """
    fp32 = _check_input(artifact, cfg, env)
    backend = cfg.resolved_backend
    fields: dict[str, Any] = {"backend": backend}
    if backend != "eager" and env.device.type != "cpu":  # int8 kernels here are CPU kernels
        fields["moved_to_cpu_from"] = str(env.device)
    n = cfg.calibration_batches if cfg.method == "static_int8" else 1
    batches = calibration_batches(env, cfg.calibration_batch_size, n)
    if cfg.method == "static_int8":
        fields.update(observer=cfg.resolved_observer, calibration_images=sum(len(b) for b in batches))
    result = cfg.handler.fn(fp32, cfg, env, batches)
    files = dict(result.files)
    if result.report:
        files["fallback.csv"] = csv_bytes(result.report, ["name", "op", "status", "reason"])
        if cfg.method != "weight_bits":  # its layers are low-bit or float, counted in low_bit_layers
            fields.update(summarise(result.report))
    fields.update(result.info)
    return StageResult(result.artifact, fields, result.history, files)


def _check_input(artifact: Deployable, cfg: QuantizeConfig, env: StageEnv) -> Eager:
    from compressbench.adapters import torch_ao
    from compressbench.runtimes import Eager
    from compressbench.runtimes.base import Unsupported

    if not isinstance(artifact, Eager) or any(torch_ao.is_quantized_module(m) for m in artifact.module.modules()):
        raise Unsupported(f"the model reaching stage '{env.name}' is already quantized (runtime "
                          f"{artifact.runtime}); quantize an fp32 model: put quantize after the training and "
                          f"pruning stages")
    check_skip(cfg, artifact.module, env.name)
    return artifact


def calibration_batches(env: StageEnv, batch_size: int, n: int) -> list[torch.Tensor]:
    """The first ``n`` shuffled training batches, without augmentation, on the CPU (fewer if the split is small)."""
    batches = []
    for x, *_ in env.train_loader(batch_size, augment=False):
        batches.append(x.detach().cpu().contiguous())
        if len(batches) == n:
            break
    return batches


def summarise(report: list[dict[str, str]]) -> dict[str, Any]:
    """Counts per status for the results row, and the first float ops by name."""
    floats = [r["name"] for r in report if r["status"] == "float"]
    out: dict[str, Any] = {f"{s}_ops": sum(r["status"] == s for r in report) for s in ("int8", "float", "fused")}
    out["float_op_names"] = "; ".join(floats[:8]) + (f"; ... (+{len(floats) - 8})" if len(floats) > 8 else "")
    return out


