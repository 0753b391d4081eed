"""The only importer of ``torch.ao.quantization``: FX graph-mode int8 (static PTQ, QAT) and eager dynamic int8.

torch 2.14 deprecates ``torch.ao.quantization`` in favour of torchao's PT2E (``adapters/torchao.py``), yet FX
mode is still the one eager int8 route with real kernels (fbgemm/oneDNN behind the ``x86`` engine), so it stays
here, behind one file, with its deprecation chatter silenced. Weights are quantized per output channel
(symmetric int8), activations per tensor (affine uint8, 7-bit range as torch's x86 default asks).
"""
from __future__ import annotations

import copy
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.ao.quantization as tq
from torch import fx, nn
from torch.ao.nn.intrinsic import qat as nniqat
from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx, prepare_qat_fx

ENGINE = "x86"  # torch's default quantized engine on x86; packed weights are engine-specific
OBSERVERS = {"minmax": tq.MinMaxObserver, "moving_average": tq.MovingAverageMinMaxObserver,
             "histogram": tq.HistogramObserver}
# Ops that only move or reshape data: their precision is whatever flows in, so they are neither int8 nor float.
LAYOUT_OPS = {"flatten", "view", "reshape", "contiguous", "size", "getattr", "getitem", "permute", "squeeze",
              "unsqueeze", "transpose", "expand", "Flatten", "Identity", "Dropout", "dim", "chunk", "split"}
_FUSABLE = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.ReLU, nn.ReLU6)
_DYNAMIC_TYPES = {nn.Linear, nn.LSTM, nn.GRU, nn.LSTMCell, nn.GRUCell, nn.RNNCell}


@dataclass
class Recipe:
    """What a quantized FX model was made with: enough to rebuild its module structure from the fp32 model."""

    observer: str = "histogram"
    per_channel: bool = True
    skip: list[str] = field(default_factory=list)
    example_shape: tuple[int, ...] = (1, 1, 8, 8)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@contextmanager
def quiet() -> Iterator[None]:
    """Silence torch.ao's deprecation notice and its per-observer reduce_range advice (not our users' concern)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.ao.quantization is deprecated.*")
        warnings.filterwarnings("ignore", message=".*Please use quant_min and quant_max.*")
        warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*")
        yield


def _qconfig(recipe: Recipe, qat: bool) -> tq.QConfig:
    default = tq.get_default_qconfig(ENGINE)
    reduce_range = default.activation().reduce_range
    if qat:  # fake-quant modules that observe with moving averages while training
        act = tq.FakeQuantize.with_args(observer=tq.MovingAverageMinMaxObserver, quant_min=0,
                                        quant_max=127 if reduce_range else 255, dtype=torch.quint8)
        if recipe.per_channel:
            weight = tq.FakeQuantize.with_args(observer=tq.MovingAveragePerChannelMinMaxObserver, quant_min=-128,
                                               quant_max=127, dtype=torch.qint8, qscheme=torch.per_channel_symmetric)
        else:
            weight = tq.FakeQuantize.with_args(observer=tq.MovingAverageMinMaxObserver, quant_min=-128,
                                               quant_max=127, dtype=torch.qint8, qscheme=torch.per_tensor_symmetric)
        return tq.QConfig(activation=act, weight=weight)
    act = OBSERVERS[recipe.observer].with_args(reduce_range=reduce_range)
    weight = (tq.PerChannelMinMaxObserver.with_args(dtype=torch.qint8, qscheme=torch.per_channel_symmetric)
              if recipe.per_channel else
              tq.MinMaxObserver.with_args(dtype=torch.qint8, qscheme=torch.per_tensor_symmetric))
    return tq.QConfig(activation=act, weight=weight)


def qconfig_mapping(recipe: Recipe, qat: bool = False) -> tq.QConfigMapping:
    """torch's x86 mapping (fixed-range ops such as sigmoid keep theirs) with our observers; ``skip`` stays float."""
    base = tq.get_default_qat_qconfig_mapping(ENGINE) if qat else tq.get_default_qconfig_mapping(ENGINE)
    mapping = base.set_global(_qconfig(recipe, qat))
    for name in recipe.skip:
        mapping.set_module_name(name, None)
    return mapping


def _example(recipe: Recipe) -> tuple[torch.Tensor]:
    return (torch.zeros(recipe.example_shape),)


def prepare_static(model: nn.Module, recipe: Recipe) -> fx.GraphModule:
    """Trace, fuse (conv-BN-ReLU) and insert observers; the caller runs calibration batches through it."""
    with quiet():
        return prepare_fx(copy.deepcopy(model).eval(), qconfig_mapping(recipe), example_inputs=_example(recipe))


def prepare_qat(model: nn.Module, recipe: Recipe) -> fx.GraphModule:
    """Trace, fuse conv-BN (BN stays trainable) and insert fake-quant modules for quantization-aware training."""
    with quiet():
        return prepare_qat_fx(copy.deepcopy(model).train(), qconfig_mapping(recipe, qat=True),
                              example_inputs=_example(recipe))


def convert(prepared: fx.GraphModule) -> fx.GraphModule:
    """Replace observed/fake-quant layers with int8 kernels (on CPU, in eval mode)."""
    with quiet():
        return convert_fx(prepared.cpu().eval())


def rebuild(source: nn.Module, recipe: Recipe, state: dict[str, Any]) -> fx.GraphModule:
    """The int8 model again from its fp32 architecture and its int8 state_dict (pickling a converted
    GraphModule directly fails to load in torch 2.14: its quantized modules unpickle half-built)."""
    with quiet(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*must run observer before calling calculate_qparams.*")
        model = convert_fx(prepare_fx(copy.deepcopy(source).cpu().eval(), qconfig_mapping(recipe),
                                      example_inputs=_example(recipe)))
    model.load_state_dict(state)
    return model


def quantize_dynamic(model: nn.Module) -> nn.Module:
    """Eager dynamic int8: int8 weights for Linear and recurrent layers, activations quantized per call."""
    with quiet():
        return tq.quantize_dynamic(copy.deepcopy(model).cpu().eval(), _DYNAMIC_TYPES, dtype=torch.qint8)


def has_dynamic_targets(model: nn.Module) -> bool:
    return any(type(m) in _DYNAMIC_TYPES for m in model.modules())


def freeze_bn_stats(model: nn.Module) -> None:
    """QAT: stop updating BatchNorm running statistics (the usual step for the last epochs)."""
    model.apply(nniqat.freeze_bn_stats)


def freeze_observers(model: nn.Module) -> None:
    """QAT: fix the quantization ranges learnt so far; fake quantization itself stays on."""
    model.apply(tq.disable_observer)


def is_quantized_module(module: nn.Module) -> bool:
    return type(module).__module__.startswith(("torch.ao.nn.quantized", "torch.ao.nn.intrinsic.quantized"))


def _op_name(node: fx.Node, gm: fx.GraphModule) -> str:
    if node.op == "call_module":
        return type(gm.get_submodule(str(node.target))).__name__
    target = node.target
    return target if isinstance(target, str) else getattr(target, "__name__", str(target))


def _skipped(name: str, skip: Iterable[str]) -> bool:
    return any(name == s or name.startswith(s + ".") for s in skip)


def fx_report(original: nn.Module, converted: fx.GraphModule, skip: Iterable[str]) -> list[dict[str, str]]:
    """Every layer and op of the converted graph: int8, float (and why), fused away, or layout only.

    An op runs in int8 when a quantized tensor flows into it; one fed only by ``dequantize`` runs in fp32.
    """
    skip = list(skip)
    quantized: dict[fx.Node, bool] = {}
    rows: list[dict[str, str]] = []
    called: set[str] = set()
    for node in converted.graph.nodes:
        if node.op in ("placeholder", "get_attr", "output"):
            quantized[node] = False
            continue
        op = _op_name(node, converted)
        fed_int8 = any(quantized.get(a, False) for a in node.all_input_nodes)
        if op.startswith("quantize_per"):
            quantized[node] = True
            continue
        if op == "dequantize":
            quantized[node] = False
            continue
        name = str(node.target) if node.op == "call_module" else node.name
        if node.op == "call_module":
            called.add(name)
            int8 = is_quantized_module(converted.get_submodule(name)) or fed_int8
        else:
            int8 = fed_int8
        quantized[node] = int8
        if op in LAYOUT_OPS:
            rows.append({"name": name, "op": op, "status": "layout", "reason": "moves data only"})
        elif int8:
            rows.append({"name": name, "op": op, "status": "int8", "reason": "int8 kernel"})
        elif _skipped(name, skip):
            rows.append({"name": name, "op": op, "status": "float", "reason": "listed in quantize.skip"})
        else:
            rows.append({"name": name, "op": op, "status": "float",
                         "reason": f"no int8 pattern for {op} in torch.ao's {ENGINE} backend config: runs in "
                                   "fp32 between dequantize and quantize"})
    for name, module in original.named_modules():
        if name and not list(module.children()) and name not in called and isinstance(module, _FUSABLE):
            what = "BatchNorm folded into the conv" if "BatchNorm" in type(module).__name__ else "fused into the layer"
            rows.append({"name": name, "op": type(module).__name__, "status": "fused",
                         "reason": f"{what} before it (one int8 kernel)"})
    return rows


def dynamic_report(model: nn.Module) -> list[dict[str, str]]:
    """Every leaf layer of a dynamically quantized model: int8 (Linear/recurrent) or float, and why."""
    rows = []
    inside_int8: tuple[str, ...] = ()
    for name, module in model.named_modules():
        if inside_int8 and name.startswith(inside_int8):
            continue  # the packed parameters of an int8 layer
        dynamic = type(module).__module__.startswith("torch.ao.nn.quantized.dynamic")
        if not name or (list(module.children()) and not dynamic):
            continue
        op = type(module).__name__
        if dynamic:
            inside_int8 += (name + ".",)
            rows.append({"name": name, "op": op, "status": "int8",
                         "reason": "int8 weights; activations quantized per call"})
        elif op in LAYOUT_OPS:
            rows.append({"name": name, "op": op, "status": "layout", "reason": "moves data only"})
        else:
            rows.append({"name": name, "op": op, "status": "float",
                         "reason": "dynamic int8 covers Linear and recurrent layers only"})
    return rows
