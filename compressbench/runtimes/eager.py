"""Eager PyTorch deployables: the trainable fp32 model every stage edits, and its fp16/bf16 casts.

An ``Eager`` model is saved as its architecture (``Arch`` + ``models.structure.describe``: what compression
changed) and a state_dict, and rebuilt from those — never unpickled. Techniques that keep state outside the
state_dict (weight sharing keeps its codebook in non-persistent buffers and a forward pre-hook) register a
``ModuleState`` here, so saving and loading keep it without this module knowing the technique.
"""
from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Protocol

import torch
from torch import nn

from compressbench.models import structure
from compressbench.models.counting import count_macs, param_counts
from compressbench.runtimes.base import (
    Arch,
    Counts,
    Deployable,
    NotDeployable,
    load_tensors,
    register_runtime,
    tensor_bytes,
)
from compressbench.runtimes.exporting import Exported, export_fp32, export_torchscript

WEIGHTS = "weights.pt"


class ModuleState(Protocol):
    """State a technique attaches to modules beyond their state_dict (registered with ``register_state``)."""

    name: str
    # A model carrying this state has a file format of its own (weight sharing: the Deep Compression file), so
    # the generic sparse encoding of its rows does not describe it.
    encodes_itself: bool

    def attached(self, module: nn.Module) -> bool:
        """Whether ``module`` (or a submodule) carries this state."""

    def capture(self, module: nn.Module) -> dict[str, torch.Tensor] | None:
        """The tensors to save, or None when ``module`` carries none of this state."""

    def restore(self, module: nn.Module, tensors: dict[str, torch.Tensor]) -> None:
        """Re-attach the state (hooks included) to a rebuilt ``module``."""

    def settle(self, module: nn.Module) -> None:
        """Make the weights final before they are measured or shipped (e.g. project onto shared values)."""

    def metrics(self, module: nn.Module) -> dict[str, Any]:
        """Results fields this state adds to a row (empty when the module has none of it)."""


MODULE_STATES: list[ModuleState] = []
# Results fields techniques derive from an eager model (e.g. the verified size of a sparse model's encoding),
# added to every row that measures one: ``fn(module) -> dict`` (empty when it does not apply).
ROW_FIELDS: list[Callable[[nn.Module], dict[str, Any]]] = []


def register_row_fields(fn: Callable[[nn.Module], dict[str, Any]]) -> Callable[[nn.Module], dict[str, Any]]:
    ROW_FIELDS.append(fn)
    return fn


def encodes_itself(module: nn.Module) -> bool:
    """Whether ``module`` carries a state with its own file format (``ModuleState.encodes_itself``)."""
    return any(s.encodes_itself and s.attached(module) for s in MODULE_STATES)


def register_state(state: ModuleState) -> ModuleState:
    if any(s.name == state.name for s in MODULE_STATES):
        raise ValueError(f"module state '{state.name}' is already registered")
    MODULE_STATES.append(state)
    return state


def module_device(module: nn.Module) -> torch.device:
    for t in (*module.parameters(), *module.buffers()):
        return t.device
    return torch.device("cpu")


def cpu_module(module: nn.Module) -> nn.Module:
    """``module`` if it is on the CPU, else a CPU copy: the caller's model stays on its device."""
    if all(t.device.type == "cpu" for t in [*module.parameters(), *module.buffers()]):
        return module
    return copy.deepcopy(module).cpu()


def save_module(module: nn.Module, arch: Arch, directory: Path, prefix: str = "") -> dict[str, Any]:
    """Write ``module`` as architecture + tensors into ``directory``; the metadata to rebuild it."""
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in module.state_dict().items()}
    meta: dict[str, Any] = {"arch": arch.as_dict(), "structure": structure.describe(module, arch.build()),
                            "weights": prefix + WEIGHTS, "states": {}}
    (directory / meta["weights"]).write_bytes(tensor_bytes(state))
    for handler in MODULE_STATES:
        tensors = handler.capture(module)
        if tensors:
            file = f"{prefix}{handler.name}.pt"
            (directory / file).write_bytes(tensor_bytes({k: v.detach().cpu() for k, v in tensors.items()}))
            meta["states"][handler.name] = file
    return meta


def load_module(directory: Path, meta: dict[str, Any]) -> tuple[nn.Module, Arch]:
    """The module ``save_module`` wrote (on the CPU), rebuilt from its architecture and tensors."""
    arch = Arch.from_dict(meta["arch"])
    module = structure.rebuild(arch.build(), meta["structure"], load_tensors(directory / meta["weights"]))
    handlers = {h.name: h for h in MODULE_STATES}
    for name, file in meta.get("states", {}).items():
        if name not in handlers:
            raise structure.StructureError(f"saved model state '{name}' is not known to this compressbench "
                                           f"(known: {', '.join(handlers) or 'none'})")
        handlers[name].restore(module, load_tensors(directory / file))
    return module, arch


@register_runtime
class Eager(Deployable):
    """An fp32 ``nn.Module`` run by eager PyTorch: what training, pruning and the other edits work on."""

    kind: ClassVar[str] = "eager"
    trainable: ClassVar[bool] = True

    def __init__(self, module: nn.Module, arch: Arch, runtime: str = "eager") -> None:
        super().__init__(arch, runtime)
        self.module = module

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)

    def eval(self) -> Eager:
        self.module.eval()
        return self

    @property
    def device(self) -> torch.device:
        return module_device(self.module)

    def settle(self) -> None:
        for handler in MODULE_STATES:
            handler.settle(self.module)

    def artifact_bytes(self) -> bytes:
        self.settle()
        return tensor_bytes(self.module.state_dict())

    def timed_form(self) -> str:
        return "nn.Module (eager PyTorch)"

    def param_counts(self) -> Counts:
        self.settle()
        return param_counts(self.module)

    def macs(self, example: torch.Tensor) -> Counts:
        return count_macs(self.module, example)

    def extra_metrics(self) -> dict[str, Any]:
        self.settle()
        out: dict[str, Any] = {}
        for handler in MODULE_STATES:
            out.update(handler.metrics(self.module))
        for fields in ROW_FIELDS:
            out.update(fields(self.module))
        return out

    @classmethod
    def from_fp32(cls, fp32: Eager, example: torch.Tensor) -> Deployable:
        """The fp32 route ``eager``: the model itself (on the CPU, where fp32 routes are timed)."""
        return Eager(cpu_module(fp32.module).eval(), fp32.arch)

    def save(self, directory: Path) -> dict[str, Any]:
        self.settle()
        return {**save_module(self.module, self.arch, directory), "runtime": self.runtime}

    @classmethod
    def load(cls, directory: Path, meta: dict[str, Any], device: torch.device) -> Eager:
        module, arch = load_module(directory, meta)
        return cls(module.to(device), arch, meta.get("runtime", "eager"))

    def export(self, directory: Path, example: torch.Tensor) -> Exported:
        return export_fp32(copy.deepcopy(self.module), directory, example)


def as_module(artifact: Deployable, stage: str) -> nn.Module:
    """The trainable module inside ``artifact``; a clear error when a stage gets, e.g., an int8 model."""
    if not isinstance(artifact, Eager):
        raise NotDeployable(f"stage '{stage}' trains or edits fp32 weights, but the model reaching it runs on "
                            f"{artifact.runtime}; put '{stage}' before the quantize stage")
    return artifact.module


@register_runtime
class Cast(Deployable):
    """The model with every weight and activation in fp16 or bf16, run eagerly; logits back in fp32."""

    kind: ClassVar[str] = "cast"

    def __init__(self, module: nn.Module, arch: Arch, dtype: torch.dtype) -> None:
        super().__init__(arch, f"eager-{'fp16' if dtype == torch.float16 else 'bf16'}")
        self.module = module.to(dtype)
        self.dtype = dtype

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x.to(self.dtype)).float()

    def eval(self) -> Cast:
        self.module.eval()
        return self

    @property
    def device(self) -> torch.device:
        return module_device(self.module)

    def artifact_bytes(self) -> bytes:
        return tensor_bytes(self.module.state_dict())

    def size_file(self) -> str:
        return f"{self.runtime.removeprefix('eager-')} state_dict (with the model's code)"

    def timed_form(self) -> str:
        return f"nn.Module (eager PyTorch, {self.runtime.removeprefix('eager-')})"

    def param_counts(self) -> Counts:
        return param_counts(self.module)

    def macs(self, example: torch.Tensor) -> Counts:
        return count_macs(self.module, example.to(self.dtype))

    def save(self, directory: Path) -> dict[str, Any]:
        return {**save_module(self.module, self.arch, directory), "dtype": str(self.dtype).removeprefix("torch.")}

    @classmethod
    def load(cls, directory: Path, meta: dict[str, Any], device: torch.device) -> Cast:
        dtype = {"float16": torch.float16, "bfloat16": torch.bfloat16}[meta["dtype"]]
        module, arch = load_module(directory, meta)
        return cls(module.to(device), arch, dtype)

    def export(self, directory: Path, example: torch.Tensor) -> Exported:
        wrapped = _CastIO(copy.deepcopy(self.module).cpu(), self.dtype)
        out = export_fp32(wrapped, directory, example, stem=f"model_{self.runtime.removeprefix('eager-')}")
        # ONNX Runtime's CPU kernels compute fp16 graphs by their own rules: half-precision rounding apart.
        out.tolerance.update({n: 2e-2 for n, f in out.files.items() if f == "onnx"})
        return out


class _CastIO(nn.Module):
    """What ``Cast`` runs, as one module: fp32 in, the model in fp16/bf16, fp32 out (so files take fp32 input)."""

    def __init__(self, inner: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.inner, self.dtype = inner, dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.to(self.dtype)).float()


@register_runtime
class DynamicInt8(Deployable):
    """Eager dynamic int8 (``torch.ao``): int8 Linear/recurrent weights, activations quantized per call."""

    kind: ClassVar[str] = "eager-dynamic-int8"

    def __init__(self, module: nn.Module, source: Eager) -> None:
        super().__init__(source.arch, "eager-dynamic-int8")
        self.module, self.source = module, source

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)

    def eval(self) -> DynamicInt8:
        self.module.eval()
        return self

    def artifact_bytes(self) -> bytes:
        return tensor_bytes(self.module.state_dict())

    def size_file(self) -> str:
        return "dynamic int8 state_dict (with the model's code and torch.ao.quantize_dynamic)"

    def timed_form(self) -> str:
        return "nn.Module (eager PyTorch, dynamic int8)"

    def param_counts(self) -> Counts:
        return param_counts(self.module)

    def macs(self, example: torch.Tensor) -> Counts:
        return count_macs(self.module, example)

    def save(self, directory: Path) -> dict[str, Any]:
        meta = {"source": save_module(self.source.module, self.arch, directory, prefix="fp32_"),
                "int8": "int8_weights.pt"}
        (directory / meta["int8"]).write_bytes(tensor_bytes(self.module.state_dict()))
        return meta

    def export(self, directory: Path, example: torch.Tensor) -> Exported:
        return export_torchscript(self.module, directory, example, "model_dynamic_int8.ts")

    @classmethod
    def load(cls, directory: Path, meta: dict[str, Any], device: torch.device) -> DynamicInt8:
        from compressbench.adapters import torch_ao

        source, arch = load_module(directory, meta["source"])
        module = torch_ao.quantize_dynamic(source)
        module.load_state_dict(load_tensors(directory / meta["int8"]))
        return cls(module, Eager(source, arch))
