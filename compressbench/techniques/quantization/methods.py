"""Quantization handlers, one per (method, backend) in the ``QUANTIZERS`` registry: fp32 model in, deployable out.

Each returns a ``Result``: the deployable (a ``runtimes`` Deployable), the fallback report rows (every layer/op:
int8, float and why, fused, layout), extra results fields and files. Failures that mean "this model cannot go
this way" — an untraceable graph, an op an exporter or kernel library lacks, nothing left to quantize — raise
``Unsupported`` naming the op and what to try instead; anything else is a bug and propagates. A new backend is
one decorated function here (or in its own module) plus its runtime in ``compressbench.runtimes``.

Every handler is declared here, and this module imports no torch at load time (each handler imports what it
runs), so the quantize stage's method, backend and observer are checked before torch is imported.
"""
from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from compressbench.infra.registry import Registry
from compressbench.techniques.quantization.result import (
    Result,
    fp32_cpu,
    need_int8,
    recipe_of,
    unsupported_because,
)

if TYPE_CHECKING:
    import torch

    from compressbench.engine.env import StageEnv
    from compressbench.runtimes import Eager

@dataclass(frozen=True)
class Quantizer:
    """A (method, backend) handler: ``fn(model, cfg, env, batches) -> Result`` and what it needs installed."""

    fn: Callable[..., Result]
    observers: tuple[str, ...] = ()  # activation observers it accepts (first = default); () = none
    packages: tuple[str, ...] = ()  # importable modules it needs
    extra: str = ""  # the pip extra that installs them


QUANTIZERS: Registry[Quantizer] = Registry("quantize method/backend")


def register(method: str, backend: str, observers: tuple[str, ...] = (), packages: tuple[str, ...] = (),
             extra: str = "") -> Callable[[Callable[..., Result]], Callable[..., Result]]:
    def add(fn: Callable[..., Result]) -> Callable[..., Result]:
        QUANTIZERS.register(f"{method}/{backend}")(Quantizer(fn, observers, packages, extra))
        return fn

    return add


def backends(method: str) -> list[str]:
    """The backends registered for ``method``, the default (``auto``) first."""
    found = [k.split("/", 1)[1] for k in QUANTIZERS.names() if k.split("/", 1)[0] == method]
    order = ("fx", "eager", "pt2e", "onnxruntime")
    return sorted(found, key=lambda b: (order.index(b) if b in order else len(order), b))


def methods() -> list[str]:
    """The registered methods, the common ones first (the order error messages list them in)."""
    order = ("static_int8", "dynamic_int8", "qat", "fp16", "bf16", "weight_bits")
    found = dict.fromkeys(k.split("/", 1)[0] for k in QUANTIZERS.names())
    return sorted(found, key=lambda m: (order.index(m) if m in order else len(order), m))


@register("static_int8", "fx", observers=("histogram", "minmax", "moving_average"))
def static_fx(fp32: Eager, cfg: Any, env: StageEnv, batches: list[torch.Tensor]) -> Result:
    """FX graph-mode static int8: fuse conv-BN-ReLU, observe activations on ``batches``, convert."""
    import torch

    from compressbench.adapters import torch_ao
    from compressbench.runtimes.fx_int8 import FxInt8

    source = fp32_cpu(fp32)
    model, recipe = source.module, recipe_of(cfg, batches)
    try:
        prepared = torch_ao.prepare_static(model, recipe)
    except Exception as e:  # noqa: BLE001 — any tracing failure means: this graph cannot go through FX
        raise unsupported_because(f"FX graph mode cannot trace {type(model).__name__}", e,
                           "Try quantize.backend=onnxruntime or pt2e") from e
    with torch.no_grad():
        for x in batches:
            prepared(x)
    converted = torch_ao.convert(prepared)
    report = torch_ao.fx_report(model, converted, recipe.skip)
    need_int8(report, model, "FX")
    try:
        with torch.no_grad():
            converted(batches[0][:2])
    except (RuntimeError, NotImplementedError) as e:
        raise unsupported_because("an int8 kernel is missing on this CPU/engine", e,
                           "Keep that layer float with quantize.skip, or use quantize.backend=onnxruntime") from e
    int8 = FxInt8(converted, source, recipe)
    return Result(int8, report, {"quant_engine": torch_ao.ENGINE},
                  {"model_int8_state_dict.pt": int8.artifact_bytes()})


@register("dynamic_int8", "fx")
def dynamic_fx(fp32: Eager, cfg: Any, env: StageEnv, batches: list[torch.Tensor]) -> Result:
    """Eager dynamic int8: Linear/recurrent weights int8, activations quantized per call."""
    from compressbench.adapters import torch_ao
    from compressbench.runtimes.base import Unsupported
    from compressbench.runtimes.eager import DynamicInt8

    source = fp32_cpu(fp32)
    model = source.module
    if not torch_ao.has_dynamic_targets(model):
        raise Unsupported(f"dynamic int8 quantizes Linear and recurrent layers; {type(model).__name__} has none. "
                          "Use quantize.method=static_int8")
    quantized = torch_ao.quantize_dynamic(model)
    return Result(DynamicInt8(quantized, source), torch_ao.dynamic_report(quantized),
                  {"quant_engine": torch_ao.ENGINE})


@register("static_int8", "pt2e", observers=("histogram", "minmax"), packages=("torchao",), extra="pt2e")
def pt2e_static(fp32: Eager, cfg: Any, env: StageEnv, batches: list[torch.Tensor]) -> Result:
    return pt2e(fp32, cfg, batches, dynamic=False)


@register("dynamic_int8", "pt2e", packages=("torchao",), extra="pt2e")
def pt2e_dynamic(fp32: Eager, cfg: Any, env: StageEnv, batches: list[torch.Tensor]) -> Result:
    return pt2e(fp32, cfg, batches, dynamic=True)


def pt2e(fp32: Eager, cfg: Any, batches: list[torch.Tensor], dynamic: bool) -> Result:
    """PT2E int8 (torchao ``X86InductorQuantizer``), run compiled by inductor."""
    from compressbench.adapters import torchao
    from compressbench.runtimes.compiled import Pt2eInt8

    torchao.require()
    source = fp32_cpu(fp32)
    model = source.module
    observer = cfg.resolved_observer if not dynamic else "histogram"
    try:
        int8 = Pt2eInt8.quantize(source, batches, observer, dynamic, list(cfg.skip))
    except Exception as e:  # noqa: BLE001 — export/annotation failures: this graph cannot go this way
        raise unsupported_because(f"torch.export/PT2E cannot quantize {type(model).__name__}", e,
                           "Try quantize.backend=fx or onnxruntime") from e
    report = torchao.pt2e_report(model, int8.converted)
    need_int8(report, model, "PT2E")
    program = int8.program()  # the file export writes and deployable_bytes counts
    return Result(int8, report, {"program_bytes": len(program)}, {"model_int8.pt2": program})


@register("static_int8", "onnxruntime", observers=("minmax", "entropy", "percentile", "distribution"),
          packages=("onnxruntime", "onnx", "onnxscript"), extra="onnx")
def ort_static(fp32: Eager, cfg: Any, env: StageEnv, batches: list[torch.Tensor]) -> Result:
    return onnxruntime(fp32, cfg, batches, dynamic=False)


@register("dynamic_int8", "onnxruntime", packages=("onnxruntime", "onnx", "onnxscript"), extra="onnx")
def ort_dynamic(fp32: Eager, cfg: Any, env: StageEnv, batches: list[torch.Tensor]) -> Result:
    return onnxruntime(fp32, cfg, batches, dynamic=True)


def onnxruntime(fp32: Eager, cfg: Any, batches: list[torch.Tensor], dynamic: bool) -> Result:
    """Export to ONNX (fp32), quantize to QDQ int8 (static, calibrated on ``batches``) or dynamic int8, and run
    in ONNX Runtime: accuracy and latency are then those of the exported file."""
    from compressbench.adapters import onnx as onnx_adapter
    from compressbench.adapters import onnxruntime as ort_adapter
    from compressbench.models.counting import count_macs
    from compressbench.runtimes.onnxruntime import Ort

    ort_adapter.require()
    source = fp32_cpu(fp32)
    model, observer, per_channel, skip = source.module, cfg.resolved_observer, cfg.per_channel, list(cfg.skip)
    try:
        fp32, exporter = onnx_adapter.export(model, batches[0])
    except Exception as e:  # noqa: BLE001 — both exporters failed: an op has no ONNX symbolic
        raise unsupported_because(f"ONNX export of {type(model).__name__} failed", e,
                           "Try quantize.backend=fx or pt2e") from e
    exclude = onnx_adapter.nodes_of_modules(fp32, skip)
    if dynamic:
        int8 = ort_adapter.quantize_dynamic(fp32, per_channel, exclude)
    else:
        int8 = ort_adapter.quantize_static(fp32, batches, observer, per_channel, exclude)
    report = onnx_adapter.qdq_report(int8, dynamic=dynamic)
    need_int8(report, model, "onnxruntime.quantization")
    macs = count_macs(model, batches[0][:1])
    runtime = "onnxruntime-dynamic-int8" if dynamic else "onnxruntime-int8"
    info = {"onnx_exporter": exporter, "onnx_fp32_bytes": len(fp32)}
    return Result(Ort(int8, source.arch, runtime, macs), report, info,
                  {"model_fp32.onnx": fp32, "model_int8.onnx": int8})


@register("fp16", "eager")
def fp16(fp32: Eager, cfg: Any, env: StageEnv, batches: list[torch.Tensor]) -> Result:
    import torch

    return cast(fp32, torch.float16, batches[0])


@register("bf16", "eager")
def bf16(fp32: Eager, cfg: Any, env: StageEnv, batches: list[torch.Tensor]) -> Result:
    import torch

    return cast(fp32, torch.bfloat16, batches[0])


def cast(fp32: Eager, dtype: torch.dtype, batch: torch.Tensor) -> Result:
    """All weights and activations in fp16 or bf16, run eagerly (on the model's device).

    fp16 tops out at 65504: a model whose activations grow past it on a calibration ``batch`` gives inf/NaN
    logits, which is reported as unsupported rather than measured as a broken model.
    """
    import torch

    from compressbench.runtimes.base import Unsupported
    from compressbench.runtimes.eager import Cast

    model = fp32.module
    x = batch.to(fp32.device)
    with torch.no_grad():
        finite = bool(torch.isfinite(model.eval()(x)).all())
        cast_model = Cast(copy.deepcopy(model), fp32.arch, dtype).eval()
        if finite and not bool(torch.isfinite(cast_model(x)).all()):
            raise Unsupported(f"{dtype} overflows in {type(model).__name__}: activations leave its range "
                              f"(fp16's largest value is 65504) on a calibration batch. Use quantize.method=bf16")
    return Result(cast_model)


@register("qat", "fx", observers=("moving_average",))
def qat_fx(fp32: Eager, cfg: Any, env: StageEnv, batches: list[torch.Tensor]) -> Result:
    """Quantization-aware training with FX fake quantization, then int8 kernels (``training.qat_fx``)."""
    from compressbench.techniques.quantization import training

    return training.qat_fx(fp32, cfg, env, batches)


@register("weight_bits", "eager")
def weight_bits(fp32: Eager, cfg: Any, env: StageEnv, batches: list[torch.Tensor]) -> Result:
    """Low-bit per-channel weights, finetuned with the straight-through estimator (``training.weight_bits``)."""
    from compressbench.techniques.quantization import training

    return training.weight_bits(fp32, cfg, env, batches)


def calibrated_by_runtime(name: str) -> Callable[..., Result]:
    """The ``static_int8`` handler of runtime ``name``, which calibrates its own int8 model (``calibrate_int8``)."""

    def handler(fp32: Eager, cfg: Any, env: StageEnv, batches: list[torch.Tensor]) -> Result:
        from compressbench.runtimes import int8_calibrating

        try:
            int8, report = int8_calibrating(name).calibrate_int8(fp32_cpu(fp32), batches)
        except Exception as e:  # noqa: BLE001 — conversion/calibration failures: this model cannot go this way
            raise unsupported_because(f"{name} int8 of {type(fp32.module).__name__} failed", e,
                               "Try quantize.backend=fx or onnxruntime") from e
        need_int8(report, fp32.module, name)
        return Result(int8, report)

    handler.__name__ = handler.__qualname__ = f"{name}_static"
    return handler


# Each runtime that is ``Int8Calibrating`` (a ``calibrate_int8`` classmethod) is a static_int8 backend under its RUNTIMES name, needing the
# runtime's packages. Listed here, not found by importing every runtime (that imports torch), so the backend names
# are known before torch is; tests/registries/test_runtimes.py fails when a calibrating runtime is missing here.
register("static_int8", "openvino", observers=("nncf",), packages=("openvino", "nncf"), extra="openvino")(
    calibrated_by_runtime("openvino"))
