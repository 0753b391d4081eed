"""The ``quantize`` stage kind: int8 (static PTQ, dynamic, QAT), fp16/bf16 casts and low-bit weights.

The stage returns a model that runs on the runtime a user would deploy — eager int8 kernels (FX), compiled
PT2E int8, or ONNX Runtime — and ``measure`` re-evaluates accuracy and times it there, against the fp32
reference on the same runtime family. Beside it the stage writes ``fallback.csv`` (every layer/op: int8, float
and why, fused) and the deployable files, and records ``speedup_vs_best_fp32``: the int8 model against the
fastest fp32 runtime it timed, paired (DESIGN.md §6). Method code lives in ``compressbench.quantization``.
"""
from __future__ import annotations

import copy
import importlib.util
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from compressbench.adapters import torch_ao
from compressbench.atomic import atomic_write_bytes
from compressbench.config import BadValue, StageConfig, check
from compressbench.quantization import Unsupported, methods, training
from compressbench.quantization.methods import Result
from compressbench.results import write_csv
from compressbench.stages import register_stage

if TYPE_CHECKING:
    from compressbench.context import RunContext

__all__ = ["QuantizeConfig", "Unsupported", "quantize"]

BACKENDS = {"static_int8": ("fx", "pt2e", "onnxruntime"), "dynamic_int8": ("fx", "pt2e", "onnxruntime"),
            "qat": ("fx",), "fp16": ("eager",), "bf16": ("eager",), "weight_bits": ("eager",)}
OBSERVERS = {"fx": ("histogram", "minmax", "moving_average"), "pt2e": ("histogram", "minmax"),
             "onnxruntime": ("minmax", "entropy", "percentile", "distribution")}
FP32_ROUTES = ("eager", "compiled", "onnxruntime")


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
    fp32_routes: list[str] = field(default_factory=lambda: list(FP32_ROUTES))  # for speedup_vs_best_fp32
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
        check(self.method in BACKENDS, "method", self.method, ", ".join(BACKENDS))
        allowed = BACKENDS[self.method]
        check(self.backend == "auto" or self.backend in allowed, "backend", self.backend,
              f"auto or {' | '.join(allowed)} for method {self.method}")
        if self.method == "static_int8":
            observers = OBSERVERS[self.resolved_backend]
            check(self.observer == "auto" or self.observer in observers, "observer", self.observer,
                  f"auto or {' | '.join(observers)} for backend {self.resolved_backend}")
        elif self.method == "qat":
            check(self.observer in ("auto", "moving_average"), "observer", self.observer,
                  "auto or moving_average for qat (fake quantization tracks moving-average ranges)")
        else:
            check(self.observer == "auto", "observer", self.observer,
                  f"auto: method {self.method} does not calibrate activation ranges")
        needs = {"onnxruntime": (("onnxruntime", "onnx", "onnxscript"), "onnx"), "pt2e": (("torchao",), "pt2e")}
        for backend, (packages, extra) in needs.items():
            for package in packages if self.resolved_backend == backend else ():
                check(importlib.util.find_spec(package) is not None, "backend", self.backend,
                      f'installed: {package} is missing (pip install "compressbench[{extra}]")')
        check(self.per_channel or self.resolved_backend in ("fx", "onnxruntime"), "per_channel", self.per_channel,
              "true for this method/backend (only fx and onnxruntime int8 offer per-tensor weights)")
        check(self.calibration_batches >= 1, "calibration_batches", self.calibration_batches, ">= 1")
        check(self.calibration_batch_size >= 1, "calibration_batch_size", self.calibration_batch_size, ">= 1")
        check(self.weight_bits in (8, 4, 2), "weight_bits", self.weight_bits, "8, 4 or 2")
        check(set(self.fp32_routes) <= set(FP32_ROUTES), "fp32_routes", self.fp32_routes,
              f"a list drawn from {', '.join(FP32_ROUTES)} ([] skips speedup_vs_best_fp32)")
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
        return BACKENDS[self.method][0] if self.backend == "auto" else self.backend

    def check_model(self, model: nn.Module, node: str = "quantize") -> None:
        """``skip`` must name modules of the model (checked by the runner before any training)."""
        names = {n for n, _ in model.named_modules() if n}
        for name in self.skip:
            if name not in names:
                listed = ", ".join(sorted(n for n in names if "." not in n))
                raise BadValue(f"{node}.skip", name, f"a module of {type(model).__name__}: top-level modules "
                               f"{listed} (children as 'parent.child')")

    @property
    def resolved_observer(self) -> str:
        if self.observer != "auto":
            return self.observer
        if self.method == "qat":
            return "moving_average"
        return "minmax" if self.resolved_backend == "onnxruntime" else "histogram"


@register_stage("quantize", QuantizeConfig)
def quantize(model: nn.Module, cfg: QuantizeConfig, ctx: RunContext) -> nn.Module:
    """Quantize ``model`` as ``cfg`` asks; write the fallback report and files; time it against fp32 routes."""
    _check_input(model, cfg, ctx)
    backend = cfg.resolved_backend
    fields: dict[str, Any] = {"backend": backend}
    if backend != "eager" and ctx.device.type != "cpu":  # int8 kernels here are CPU kernels
        fields["moved_to_cpu_from"] = str(ctx.device)
    n = cfg.calibration_batches if cfg.method == "static_int8" else 1
    batches = calibration_batches(ctx, cfg.calibration_batch_size, n)
    if cfg.method == "static_int8":
        fields.update(observer=cfg.resolved_observer, calibration_images=sum(len(b) for b in batches))
    result = _run_method(model, cfg, ctx, batches)
    for name, data in result.files.items():
        atomic_write_bytes(ctx.stage_dir / name, data)
    if result.report:
        write_csv(ctx.stage_dir / "fallback.csv", result.report, ["name", "op", "status", "reason"])
        if cfg.method != "weight_bits":  # its layers are low-bit or float, counted in low_bit_layers
            fields.update(summarise(result.report))
    fields.update(result.info)
    ctx.record(**fields)
    # measure() times it against each fp32 route, afresh on every measurement (never from the cache).
    result.model.compressbench_fp32_routes = list(cfg.fp32_routes)
    return result.model


def _run_method(model: nn.Module, cfg: QuantizeConfig, ctx: RunContext, batches: list[torch.Tensor]) -> Result:
    backend, observer = cfg.resolved_backend, cfg.resolved_observer
    if cfg.method in ("fp16", "bf16"):
        return methods.cast(model, torch.float16 if cfg.method == "fp16" else torch.bfloat16,
                            batches[0])
    if cfg.method == "weight_bits":
        return training.weight_bits(copy.deepcopy(model), cfg, ctx)
    recipe = torch_ao.Recipe(observer=observer, per_channel=cfg.per_channel, skip=list(cfg.skip),
                             example_shape=(1, *batches[0].shape[1:]))
    if cfg.method == "qat":
        return training.qat_fx(model, cfg, ctx, recipe)
    fp32 = copy.deepcopy(model).cpu().eval().to(memory_format=torch.contiguous_format)
    dynamic = cfg.method == "dynamic_int8"
    if backend == "onnxruntime":
        return methods.onnxruntime(fp32, batches, observer, cfg.per_channel, dynamic, list(cfg.skip))
    if backend == "pt2e":
        return methods.pt2e(fp32, batches, observer, dynamic, list(cfg.skip))
    return methods.dynamic_fx(fp32) if dynamic else methods.static_fx(fp32, batches, recipe)


def _check_input(model: nn.Module, cfg: QuantizeConfig, ctx: RunContext) -> None:
    runtime = getattr(model, "compressbench_runtime", "eager")
    if runtime != "eager" or any(torch_ao.is_quantized_module(m) for m in model.modules()):
        raise Unsupported(f"the model reaching stage '{ctx.stage_name}' is already quantized (runtime {runtime}); "
                          "quantize an fp32 model: put quantize after the training and pruning stages")
    cfg.check_model(model, ctx.stage_name)


def calibration_batches(ctx: RunContext, batch_size: int, n: int) -> list[torch.Tensor]:
    """The first ``n`` shuffled training batches, without augmentation, on the CPU (fewer if the split is small)."""
    batches = []
    for x, *_ in ctx.train_loader(batch_size, augment=False):
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


