"""The only importer of torchao: PT2E int8 with ``X86InductorQuantizer``, lowered by ``torch.compile``.

The model is captured with ``torch.export`` (batch dimension dynamic), annotated by the x86 quantizer (per-channel
int8 weights, uint8 activations), calibrated, and converted to a quantize/dequantize graph whose int8 patterns
inductor lowers to oneDNN int8 kernels when compiled with freezing. torchao is an optional dependency:
``pip install "compressbench[pt2e]"``.
"""
from __future__ import annotations

import copy
import dataclasses
import io
import logging
import warnings
from collections.abc import Iterable
from typing import Any

import torch
from torch import fx, nn

# torchao registers an Enum with torch's pytree at import, which torch 2.14 logs as deprecated: a note for
# torchao's developers, printed in the middle of our progress bars.
_pytree_log = logging.getLogger("torch.utils._pytree")
_pytree_level = _pytree_log.level
_pytree_log.setLevel(logging.ERROR)
try:
    from torchao.quantization.pt2e import observer as ao_observer
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as xiq
except ImportError:  # pragma: no cover - exercised only without the extra
    xiq = None
finally:
    _pytree_log.setLevel(_pytree_level)

OBSERVERS = ("minmax", "histogram")
_LAYOUT = {"view", "reshape", "flatten", "permute", "squeeze", "unsqueeze", "expand", "clone", "contiguous",
           "dropout", "getitem", "_to_copy", "alias", "t"}
_QUANTIZE = ("quantize_per_tensor", "quantize_per_channel", "choose_qparams")
_DEQUANTIZE = ("dequantize_per_tensor", "dequantize_per_channel")
_BATCH = torch.export.Dim("batch")
# Inductor's int8 lowering builds tensors from tensors at every compile; the advice is for torch, not our users.
warnings.filterwarnings("ignore", message=".*To copy construct from a tensor.*",
                        module=r"torch\._inductor\.mkldnn_lowerings")


def available() -> bool:
    return xiq is not None


def require() -> None:
    if xiq is None:
        raise ImportError('quantize.backend=pt2e needs torchao: pip install "compressbench[pt2e]"')


def quantizer(observer: str, dynamic: bool, skip: Iterable[str]) -> Any:
    """The x86 inductor quantizer: per-channel int8 weights; activations observed by ``observer``."""
    require()
    config = xiq.get_default_x86_inductor_quantization_config(is_dynamic=dynamic)
    if not dynamic and observer == "minmax":
        act = dataclasses.replace(config.input_activation,
                                  observer_or_fake_quant_ctr=ao_observer.MinMaxObserver.with_args(eps=2**-12))
        config = dataclasses.replace(config, input_activation=act, output_activation=act)
    q = xiq.X86InductorQuantizer()
    if dynamic:  # like the other backends, dynamic int8 is for Linear layers (the x86 default would take convs)
        q.set_module_type_qconfig(nn.Linear, config)
    else:
        q.set_global(config)
    for name in skip:
        q.set_module_name_qconfig(name, None)
    return q


def unshare_stateless(model: nn.Module) -> nn.Module:
    """The model with every call of a reused stateless module (torchvision's ResNet calls one ``self.relu`` two
    or three times per block) going to its own copy. The x86 quantizer groups ops by module, and one ReLU module
    behind several ops makes it fail with "Input partition has more than one output node". Models FX cannot
    trace are returned as they are."""
    try:
        gm = fx.symbolic_trace(model)
    except Exception:  # noqa: BLE001 — untraceable: export it unchanged (and let the quantizer decide)
        return model
    calls: dict[str, int] = {}
    for node in gm.graph.nodes:
        if node.op != "call_module":
            continue
        module = gm.get_submodule(str(node.target))
        if any(True for _ in module.parameters()) or any(True for _ in module.buffers()):
            continue
        calls[str(node.target)] = calls.get(str(node.target), 0) + 1
        if calls[str(node.target)] > 1:
            name = f"{node.target}_call{calls[str(node.target)]}"
            gm.add_submodule(name, copy.deepcopy(module))
            node.target = name
            stack = node.meta.get("nn_module_stack")
            if stack:  # export keeps the traced metadata, and the quantizer groups ops by its innermost module
                key, (_, kind) = list(stack.items())[-1]
                node.meta["nn_module_stack"] = {**{k: v for k, v in stack.items() if k != key}, name: (name, kind)}
    gm.recompile()
    return gm


def export(model: nn.Module, example: torch.Tensor) -> fx.GraphModule:
    """``torch.export`` with a dynamic batch dimension (``example`` needs batch >= 2: export specialises 1)."""
    if len(example) < 2:
        example = example.repeat(2, *([1] * (example.dim() - 1)))
    model = unshare_stateless(copy.deepcopy(model).cpu().eval())
    program = torch.export.export(model, (example,), dynamic_shapes=({0: _BATCH},))
    return program.module()


def prepare(model: nn.Module, example: torch.Tensor, observer: str, dynamic: bool,
            skip: Iterable[str]) -> fx.GraphModule:
    """Export and annotate ``model``: observers inserted, ready for calibration batches."""
    require()
    return prepare_pt2e(export(model, example), quantizer(observer, dynamic, skip))


def quantize(model: nn.Module, batches: list[torch.Tensor], observer: str, dynamic: bool,
             skip: Iterable[str]) -> tuple[fx.GraphModule, dict[str, torch.Tensor]]:
    """Export, annotate, calibrate on ``batches`` and convert; unused fp32 tensors are dropped.

    Returns the converted graph and the calibrated observers' state (tensors): with the fp32 model, that is
    all ``reconvert`` needs to make the same int8 graph again, so nothing has to be unpickled to load it.
    """
    prepared = prepare(model, batches[0], observer, dynamic, skip)
    with torch.no_grad():
        for x in batches:
            prepared(x)
    observed = {k: v.detach().clone() for k, v in prepared.state_dict().items()}
    return _convert(prepared), observed


def reconvert(model: nn.Module, example: torch.Tensor, observer: str, dynamic: bool, skip: Iterable[str],
              observed: dict[str, torch.Tensor]) -> fx.GraphModule:
    """The int8 graph of ``quantize`` again, from the fp32 model and the observers' saved state."""
    prepared = prepare(model, example, observer, dynamic, skip)
    prepared.load_state_dict(observed)
    return _convert(prepared)


def _convert(prepared: fx.GraphModule) -> fx.GraphModule:
    converted = convert_pt2e(prepared)
    _drop_unused_tensors(converted)
    return converted


def _drop_unused_tensors(gm: fx.GraphModule) -> None:
    """convert_pt2e leaves the fp32 weights and BN tensors it folded away attached: remove what no node reads."""
    used = {str(n.target) for n in gm.graph.nodes if n.op == "get_attr"}
    for name, _ in [*gm.named_parameters(), *gm.named_buffers()]:
        if name not in used:
            owner, _, attr = name.rpartition(".")
            delattr(gm.get_submodule(owner) if owner else gm, attr)
    gm.delete_all_unused_submodules()


def save_program(gm: fx.GraphModule, example: torch.Tensor) -> bytes:
    """The converted graph as a ``torch.export`` program file (.pt2): what a deployment would load."""
    buf = io.BytesIO()
    torch.export.save(torch.export.export(gm, (example[:2],), dynamic_shapes=({0: _BATCH},)), buf)
    return buf.getvalue()


def runnable(gm: fx.GraphModule, example: torch.Tensor) -> nn.Module:
    """The converted graph re-exported (in memory) with a dynamic batch: what ``torch.export.load`` of the
    saved program would give a deployment, without the file round trip."""
    return torch.export.export(gm, (example[:2],), dynamic_shapes=({0: _BATCH},)).module()


def _opname(node: fx.Node) -> str:
    target = node.target
    return getattr(target, "_opname", None) or getattr(target, "__name__", str(target))


def _module_of(node: fx.Node) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    return list(stack.values())[-1][0] if stack else ""


def pt2e_report(original: nn.Module, gm: fx.GraphModule) -> list[dict[str, str]]:
    """Every op of the converted graph: int8 (inside a quantize/dequantize pattern inductor lowers to an int8
    kernel), float (and why), or layout only; BatchNorms folded into convs are listed as fused."""
    rows: list[dict[str, str]] = []
    seen_modules: set[str] = set()
    for node in gm.graph.nodes:
        if node.op != "call_function":
            continue
        op = _opname(node)
        if op.startswith(_QUANTIZE) or op.startswith(_DEQUANTIZE):
            continue
        module = _module_of(node)
        seen_modules.add(module)
        name = f"{module}:{node.name}" if module else node.name
        from_dq = any(_opname(a).startswith(_DEQUANTIZE) for a in node.all_input_nodes if a.op == "call_function")
        into_q = bool(node.users) and all(_opname(u).startswith(_QUANTIZE) for u in node.users)
        if op in _LAYOUT:
            rows.append({"name": name, "op": op, "status": "layout", "reason": "moves data only"})
        # conv/linear with quantized inputs lower to int8 kernels with an fp32 output; other ops are int8 only
        # between a dequantize and a quantize.
        elif from_dq and (into_q or any(k in op for k in ("conv", "linear", "addmm"))):
            rows.append({"name": name, "op": op, "status": "int8", "reason": "int8 pattern lowered by inductor"})
        else:
            rows.append({"name": name, "op": op, "status": "float",
                         "reason": f"X86InductorQuantizer does not annotate {op} here (or quantize.skip): fp32"})
    for name, module in original.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and name not in seen_modules:
            rows.append({"name": name, "op": type(module).__name__, "status": "fused",
                         "reason": "folded into the conv before it"})
    return rows
