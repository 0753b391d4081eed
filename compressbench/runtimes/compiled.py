"""Compiled PyTorch deployables: fp32 under ``torch.compile`` (inductor + freezing), and PT2E int8.

PT2E int8 is rebuilt, not unpickled: its files are the fp32 source model (architecture + tensors), the
quantizer's options and the calibrated observers' statistics (tensors). ``torch.export``'s own ``.pt2`` file
unpickles on load, so it is only written for export (a deployment's file), never read back by us.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from compressbench.models.counting import count_macs, param_counts
from compressbench.runtimes.base import Counts, Deployable, load_tensors, register_runtime, tensor_bytes
from compressbench.runtimes.eager import Eager, cpu_module, load_module, save_module
from compressbench.runtimes.exporting import Exported


def compiled(module: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """``module`` under ``torch.compile`` (inductor, one graph per batch size) with freezing on: weights become
    constants and are prepacked, which the int8 lowering needs and which speeds fp32 up as well."""
    import torch._dynamo.config as dynamo_config
    import torch._inductor.config as inductor_config

    fn = torch.compile(module, dynamic=False)
    compiled_for: set[tuple[Any, ...]] = set()  # what dynamo guards on in our calls: shape, dtype, grad mode

    def call(x: torch.Tensor) -> torch.Tensor:
        seen = (tuple(x.shape), x.dtype, x.device, torch.is_grad_enabled())
        if seen in compiled_for:  # compiled already: nothing but the call (this runs inside latency timing)
            return fn(x)
        # Set around the compiling call only, not globally: a process-wide flag would change other code's
        # compiles. (``options={"freezing": True}`` fails on int8 graphs in torch 2.14.) Every model of a class
        # shares one code object, and dynamo stops compiling it after ``recompile_limit`` (8) guard failures:
        # the 9th model of a sweep would silently run eager and be timed as "compiled".
        before = (inductor_config.freezing, dynamo_config.recompile_limit,
                  dynamo_config.accumulated_recompile_limit)
        inductor_config.freezing = True
        dynamo_config.recompile_limit = max(before[1], 1024)
        dynamo_config.accumulated_recompile_limit = max(before[2], 1 << 16)
        try:
            out = fn(x)
        finally:
            (inductor_config.freezing, dynamo_config.recompile_limit,
             dynamo_config.accumulated_recompile_limit) = before
        compiled_for.add(seen)
        return out

    return call


@register_runtime
class Compiled(Deployable):
    """An fp32 model run through ``torch.compile`` with freezing (CPU): the reference of compiled int8."""

    kind: ClassVar[str] = "compiled"

    def __init__(self, source: Eager) -> None:
        super().__init__(source.arch, "compiled-fp32")
        self.source = source
        self._fn: Callable[[torch.Tensor], torch.Tensor] | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self._fn is None:
            self._fn = compiled(self.source.module.cpu().eval())
        return self._fn(x)

    def reference(self, fp32: Deployable) -> Deployable:
        return Compiled.from_fp32(fp32, torch.empty(0))  # type: ignore[arg-type]

    @classmethod
    def from_fp32(cls, fp32: Eager, example: torch.Tensor) -> Compiled:
        return cls(Eager(cpu_module(fp32.module).eval(), fp32.arch))

    def artifact_bytes(self) -> bytes:
        return self.source.artifact_bytes()

    def timed_form(self) -> str:
        return "torch.compile (inductor, freezing), in process"

    def param_counts(self) -> Counts:
        return self.source.param_counts()

    def macs(self, example: torch.Tensor) -> Counts:
        return self.source.macs(example)

    def save(self, directory: Path) -> dict[str, Any]:
        return {"source": save_module(self.source.module, self.arch, directory)}

    @classmethod
    def load(cls, directory: Path, meta: dict[str, Any], device: torch.device) -> Compiled:
        module, arch = load_module(directory, meta["source"])
        return cls(Eager(module, arch))

    def export(self, directory: Path, example: torch.Tensor) -> Exported:
        return self.source.export(directory, example)  # inductor's compiled code is not a file to ship


@register_runtime
class Pt2eInt8(Deployable):
    """A PT2E int8 program (torchao ``X86InductorQuantizer``) compiled by inductor into oneDNN int8 kernels."""

    kind: ClassVar[str] = "pt2e-int8"

    def __init__(self, source: Eager, options: dict[str, Any], observed: dict[str, torch.Tensor],
                 converted: nn.Module, macs: Counts) -> None:
        dynamic = bool(options.get("dynamic"))
        super().__init__(source.arch, "pt2e-dynamic-int8-compiled" if dynamic else "pt2e-int8-compiled")
        self.source, self.options, self.observed, self.converted, self._macs = source, options, observed, \
            converted, macs
        self._fn: Callable[[torch.Tensor], torch.Tensor] | None = None
        self._program: bytes | None = None

    @classmethod
    def quantize(cls, source: Eager, batches: list[torch.Tensor], observer: str, dynamic: bool,
                 skip: list[str]) -> Pt2eInt8:
        from compressbench.adapters import torchao

        options = {"observer": observer, "dynamic": dynamic, "skip": list(skip),
                   "example_shape": list(batches[0].shape[1:])}
        converted, observed = torchao.quantize(source.module, batches, observer, dynamic, skip)
        return cls(source, options, observed, converted, count_macs(source.module, batches[0][:1]))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self._fn is None:
            from compressbench.adapters import torchao

            example = torch.zeros(2, *self.options["example_shape"])
            self._fn = compiled(torchao.runnable(self.converted, example))
        return self._fn(x.contiguous())

    def reference(self, fp32: Deployable) -> Deployable:
        return Compiled.from_fp32(fp32, torch.empty(0))  # type: ignore[arg-type]  # compiled vs compiled

    def artifact_bytes(self) -> bytes:
        """The int8 weights, scales and biases the program reads (the graph itself is code, not weights)."""
        return tensor_bytes(self.converted.state_dict())

    def size_file(self) -> str:
        return "int8 program state_dict (rebuilt by compressbench)"

    def program(self) -> bytes:
        """The ``torch.export`` program file (``model_int8.pt2``), made once: what ``export`` writes."""
        if self._program is None:
            from compressbench.adapters import torchao

            self._program = torchao.save_program(self.converted, torch.zeros(2, *self.options["example_shape"]))
        return self._program

    def deployable_file(self) -> tuple[str, bytes] | None:
        return "model_int8.pt2 (torch.export)", self.program()

    def timed_form(self) -> str:
        return "the PT2E program under torch.compile (inductor, freezing), in process"

    def param_counts(self) -> Counts:
        state = self.converted.state_dict()
        return param_counts_of(v for k, v in state.items() if "scale" not in k and "zero_point" not in k)

    def macs(self, example: torch.Tensor) -> Counts:
        return self._macs

    def save(self, directory: Path) -> dict[str, Any]:
        (directory / "observers.pt").write_bytes(tensor_bytes(self.observed))
        return {"source": save_module(self.source.module, self.arch, directory, prefix="fp32_"),
                "options": self.options, "observers": "observers.pt", "macs": list(self._macs)}

    @classmethod
    def load(cls, directory: Path, meta: dict[str, Any], device: torch.device) -> Pt2eInt8:
        from compressbench.adapters import torchao

        module, arch = load_module(directory, meta["source"])
        o = meta["options"]
        observed = load_tensors(directory / meta["observers"])
        example = torch.zeros(2, *o["example_shape"])
        converted = torchao.reconvert(module, example, o["observer"], o["dynamic"], o["skip"], observed)
        return cls(Eager(module, arch), o, observed, converted, tuple(meta["macs"]))  # type: ignore[arg-type]

    def export(self, directory: Path, example: torch.Tensor) -> Exported:
        (directory / "model_int8.pt2").write_bytes(self.program())
        # Loaded plainly the program runs its quantize/dequantize graph in fp32 (what inductor lowers to int8
        # kernels in the run): the two agree to int8 rounding, not bit for bit.
        return Exported({"model_int8.pt2": "torch.export"}, tolerance={"model_int8.pt2": 0.1})


def param_counts_of(tensors: Any) -> Counts:
    """(values, nonzero values) over ``tensors`` (quantized ones are dequantized first)."""
    total = nonzero = 0
    for t in tensors:
        t = t.dequantize() if t.is_quantized else t
        total += t.numel()
        nonzero += int(torch.count_nonzero(t).item())
    return total, nonzero


__all__ = ["Compiled", "Pt2eInt8", "compiled", "param_counts", "param_counts_of"]
