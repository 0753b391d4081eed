"""Post-training quantization, one function per (method, backend): fp32 model in, runnable quantized model out.

Each returns a ``Result``: the model (a ``runtimes`` module), the fallback report rows (every layer/op: int8,
float and why, fused, layout) and extra results fields. Failures that mean "this model cannot go this way" —
an untraceable graph, an op an exporter or kernel library lacks, nothing left to quantize — raise
``Unsupported`` naming the op and what to try instead; anything else is a bug and propagates.
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from compressbench.adapters import onnx as onnx_adapter
from compressbench.adapters import onnxruntime as ort_adapter
from compressbench.adapters import torch_ao
from compressbench.measure.flops import count_macs
from compressbench.quantization import Unsupported
from compressbench.quantization.runtimes import CastModel, FxInt8Model, OrtModel, Pt2eModel

Row = dict[str, str]


@dataclass
class Result:
    model: nn.Module
    report: list[Row] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)  # name → bytes written to the stage directory


def _op_named(error: Exception) -> str:
    """The operator an error message names, if any (for the ``unsupported`` row)."""
    text = str(error)
    for pattern in (r"Could not run '([^']+)'", r"operator '?([\w:.]+)'? to ONNX", r"aten::\w+", r"aten\.\w+"):
        m = re.search(pattern, text)
        if m:
            return m.group(1) if m.groups() else m.group(0)
    return ""


def _unsupported(what: str, error: Exception, instead: str) -> Unsupported:
    op = _op_named(error)
    return Unsupported(f"{what}{f' (op {op})' if op else ''}: {type(error).__name__}: {str(error)[:400]}. "
                       f"{instead}")


def need_int8(report: list[Row], model: nn.Module, backend: str) -> None:
    if not any(r["status"] == "int8" for r in report):
        raise Unsupported(f"{backend} quantized no layer of {type(model).__name__}: every op stayed float "
                          "(see fallback.csv); try another quantize.backend")


def static_fx(model: nn.Module, batches: list[torch.Tensor], recipe: torch_ao.Recipe) -> Result:
    """FX graph-mode static int8: fuse conv-BN-ReLU, observe activations on ``batches``, convert."""
    try:
        prepared = torch_ao.prepare_static(model, recipe)
    except Exception as e:  # noqa: BLE001 — any tracing failure means: this graph cannot go through FX
        raise _unsupported(f"FX graph mode cannot trace {type(model).__name__}", e,
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
        raise _unsupported("an int8 kernel is missing on this CPU/engine", e,
                           "Keep that layer float with quantize.skip, or use quantize.backend=onnxruntime") from e
    int8 = FxInt8Model(converted, model, recipe)
    return Result(int8, report, {"quant_engine": torch_ao.ENGINE},
                  {"model_int8_state_dict.pt": int8.compressbench_artifact()})


def dynamic_fx(model: nn.Module) -> Result:
    """Eager dynamic int8: Linear/recurrent weights int8, activations quantized per call."""
    if not torch_ao.has_dynamic_targets(model):
        raise Unsupported(f"dynamic int8 quantizes Linear and recurrent layers; {type(model).__name__} has none. "
                          "Use quantize.method=static_int8")
    quantized = torch_ao.quantize_dynamic(model)
    quantized.compressbench_runtime = "eager-dynamic-int8"
    return Result(quantized, torch_ao.dynamic_report(quantized), {"quant_engine": torch_ao.ENGINE})


def pt2e(model: nn.Module, batches: list[torch.Tensor], observer: str, dynamic: bool,
         skip: list[str]) -> Result:
    """PT2E int8 (torchao ``X86InductorQuantizer``), run compiled by inductor."""
    from compressbench.adapters import torchao

    torchao.require()
    try:
        converted = torchao.quantize(model, batches, observer, dynamic, skip)
    except Exception as e:  # noqa: BLE001 — export/annotation failures: this graph cannot go this way
        raise _unsupported(f"torch.export/PT2E cannot quantize {type(model).__name__}", e,
                           "Try quantize.backend=fx or onnxruntime") from e
    report = torchao.pt2e_report(model, converted)
    need_int8(report, model, "PT2E")
    program = torchao.save_program(converted, batches[0])
    macs = count_macs(model, batches[0][:1])
    runtime = "pt2e-dynamic-int8-compiled" if dynamic else "pt2e-int8-compiled"
    return Result(Pt2eModel(program, macs, runtime), report, {"program_bytes": len(program)},
                  {"model_int8.pt2": program})


def onnxruntime(model: nn.Module, batches: list[torch.Tensor], observer: str, per_channel: bool,
                dynamic: bool, skip: list[str]) -> Result:
    """Export to ONNX (fp32), quantize to QDQ int8 (static, calibrated on ``batches``) or dynamic int8, and run
    in ONNX Runtime: accuracy and latency are then those of the exported file."""
    ort_adapter.require()
    try:
        fp32, exporter = onnx_adapter.export(model, batches[0])
    except Exception as e:  # noqa: BLE001 — both exporters failed: an op has no ONNX symbolic
        raise _unsupported(f"ONNX export of {type(model).__name__} failed", e,
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
    return Result(OrtModel(int8, runtime, macs), report, info, {"model_fp32.onnx": fp32, "model_int8.onnx": int8})


def cast(model: nn.Module, dtype: torch.dtype, batch: torch.Tensor) -> Result:
    """All weights and activations in fp16 or bf16, run eagerly (on the model's device).

    fp16 tops out at 65504: a model whose activations grow past it on a calibration ``batch`` gives inf/NaN
    logits, which is reported as unsupported rather than measured as a broken model.
    """
    device = next((t.device for t in model.parameters()), torch.device("cpu"))
    x = batch.to(device)
    with torch.no_grad():
        finite = bool(torch.isfinite(model.eval()(x)).all())
        cast_model = CastModel(copy.deepcopy(model), dtype).eval()
        if finite and not bool(torch.isfinite(cast_model(x)).all()):
            raise Unsupported(f"{dtype} overflows in {type(model).__name__}: activations leave its range "
                              f"(fp16's largest value is 65504) on a calibration batch. Use quantize.method=bf16")
    return Result(cast_model)
