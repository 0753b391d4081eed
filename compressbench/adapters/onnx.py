"""The only importer of onnx (and the home of ``torch.onnx.export``): export, and reading ONNX graphs.

Export uses torch's TorchScript-based exporter first — it folds BatchNorm into convs and takes well under a
second on our models — and falls back to the dynamo exporter for graphs it cannot handle. The batch dimension
is dynamic, so one file serves batch 1 and batch B.
In the default install (``pip install onnx onnxscript`` if it was removed).
"""
from __future__ import annotations

import importlib.util
import io
import warnings
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    import onnx

INPUT, OUTPUT = "input", "logits"
OPSET = 17  # the TorchScript exporter's opset (dynamo picks its own, recorded in the file)
_LAYOUT = {"Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Shape", "Gather", "Identity", "Constant",
           "Cast", "Dropout"}
_QDQ = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"}
_INT8_WITH_FLOAT_OUTPUT = {"Conv", "MatMul", "Gemm"}
_INTEGER_OPS = {"MatMulInteger", "ConvInteger", "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "QLinearConv",
                "QLinearMatMul"}
_WEIGHTED = {"Conv": (1, 2), "ConvTranspose": (1, 2), "Gemm": (1, 2), "MatMul": (1,), "MatMulInteger": (1,),
             "ConvInteger": (1,), "DynamicQuantizeMatMul": (1, 4), "MatMulIntegerToFloat": (1,)}


def available() -> bool:
    return importlib.util.find_spec("onnx") is not None


def require() -> Any:
    """The ``onnx`` module, imported on first use (it costs half a second at start-up); a clear error without it."""
    try:
        import onnx
    except ImportError:
        raise ImportError('quantize.backend=onnxruntime needs onnx and onnxruntime: '
                          'pip install onnx onnxscript (part of compressbench'"'"'s default install)') from None
    return onnx


def export(model: nn.Module, example: torch.Tensor) -> tuple[bytes, str]:
    """(ONNX bytes of ``model`` in eval mode on CPU, exporter used); input ``input``, output ``logits``."""
    require()
    model = model.cpu().eval()
    example = example[:1].cpu()
    buf = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(model, (example,), buf, input_names=[INPUT], output_names=[OUTPUT], dynamo=False,
                              opset_version=OPSET, dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}})
        return buf.getvalue(), "torchscript"
    except Exception as first:  # noqa: BLE001 — try the other exporter before giving up
        try:
            program = torch.onnx.export(model, (example.repeat(2, 1, 1, 1),), input_names=[INPUT],
                                        output_names=[OUTPUT], dynamo=True,
                                        dynamic_shapes=({0: torch.export.Dim("batch")},))
            return program.model_proto.SerializeToString(), "dynamo"
        except Exception as second:  # noqa: BLE001
            raise RuntimeError(f"ONNX export failed with both exporters: TorchScript: {first}; dynamo: "
                               f"{second}") from second


def load(data: bytes) -> onnx.ModelProto:
    return require().load_from_string(data)


def nodes_of_modules(data: bytes, modules: list[str]) -> list[str]:
    """Names of the nodes exported from ``modules`` (and their children): the exporter names nodes by module
    path, e.g. ``/layer1/layer1.0/conv1/Conv``."""
    if not modules:
        return []
    names = []
    for node in load(data).graph.node:
        parts = node.name.split("/")
        if any(p == m or p.startswith(m + ".") for p in parts for m in modules):
            names.append(node.name)
    return names


def _producers(model: onnx.ModelProto) -> dict[str, onnx.NodeProto]:
    return {out: node for node in model.graph.node for out in node.output}


def weight_counts(data: bytes) -> tuple[int, int]:
    """(values, nonzero values) in the weights and biases of conv/linear nodes, through DequantizeLinear."""
    from onnx import numpy_helper

    model = load(data)
    inits = {t.name: t for t in model.graph.initializer}
    producers = _producers(model)
    total = nonzero = 0
    counted: set[str] = set()
    for node in model.graph.node:
        # A bias added after a MatMul (dynamic int8, the dynamo exporter) is an Add with a constant input.
        slots = range(len(node.input)) if node.op_type == "Add" else _WEIGHTED.get(node.op_type, ())
        for i in slots:
            if i >= len(node.input) or not node.input[i]:
                continue
            name = node.input[i]
            source = producers.get(name)
            if source is not None and source.op_type == "DequantizeLinear":
                name = source.input[0]
            if name in inits and name not in counted:
                counted.add(name)
                array = numpy_helper.to_array(inits[name])
                total += int(array.size)
                nonzero += int((array != 0).sum())
    return total, nonzero


def qdq_report(data: bytes, dynamic: bool = False) -> list[dict[str, str]]:
    """Every op of a quantized ONNX graph: int8 (between DequantizeLinear and QuantizeLinear, or an integer
    op), float (and why), or layout only."""
    model = load(data)
    inits = {t.name for t in model.graph.initializer}
    producers = _producers(model)
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    rows = []
    for node in model.graph.node:
        op = node.op_type
        if op in _QDQ:
            continue
        name = node.name or f"{op}:{node.output[0]}"
        from_dq = any((p := producers.get(i)) is not None and p.op_type == "DequantizeLinear"
                      and p.input[0] not in inits for i in node.input)
        users = [u for out in node.output for u in consumers.get(out, [])]
        into_q = bool(users) and all(u.op_type == "QuantizeLinear" for u in users)
        if op in _LAYOUT:
            rows.append({"name": name, "op": op, "status": "layout", "reason": "moves data only"})
        # Conv/MatMul/Gemm with quantized inputs run as int8 kernels even when their output stays float
        # (QGemm, MatMulIntegerToFloat); any other op is int8 only between a dequantize and a quantize.
        elif op in _INTEGER_OPS or (from_dq and (into_q or op in _INT8_WITH_FLOAT_OUTPUT)):
            rows.append({"name": name, "op": op, "status": "int8", "reason": "int8 kernel in ONNX Runtime"})
        elif dynamic:
            rows.append({"name": name, "op": op, "status": "float",
                         "reason": "dynamic int8 covers MatMul/Gemm (Linear) only"})
        else:
            rows.append({"name": name, "op": op, "status": "float",
                         "reason": f"onnxruntime.quantization left {op} unquantized (no QDQ rule, or quantize.skip)"})
    return rows
