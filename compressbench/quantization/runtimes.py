"""Modules that run quantized artifacts, and the fp32 reference each compares against on its own runtime.

Every module here takes the same normalised float batches as the fp32 model and returns float logits, so
``evaluate`` and ``measure`` treat it like any model. Each says which runtime executes it
(``compressbench_runtime``), returns the bytes a user would ship (``compressbench_artifact``) and builds the fp32
reference on the same runtime family (``compressbench_reference``), so the paired ``speedup`` compares like
with like (DESIGN.md §6). Each pickles to bytes (its artifact plus what is needed to rebuild it), so the stage
cache works and loading it with ``map_location=cuda`` cannot move CPU-only int8 tensors.
"""
from __future__ import annotations

import copy
import io
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from compressbench.adapters import onnx as onnx_adapter
from compressbench.adapters import onnxruntime as ort_adapter
from compressbench.adapters import torch_ao
from compressbench.measure.flops import count_macs

Counts = tuple[int, int]


def to_bytes(obj: Any) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def from_bytes(data: bytes) -> Any:
    # Only our own pickles (inside verified stage-cache entries) reach here.
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)


def counts_of(tensors: Any) -> Counts:
    """(values, nonzero values) over ``tensors`` (quantized ones are dequantized first)."""
    total = nonzero = 0
    for t in tensors:
        t = t.dequantize() if t.is_quantized else t
        total += t.numel()
        nonzero += int(torch.count_nonzero(t).item())
    return total, nonzero


class FxInt8Model(nn.Module):
    """An FX-converted int8 model run by PyTorch's eager quantized kernels (fbgemm/oneDNN, ``x86`` engine).

    The ``x86`` engine settles its conv kernels at a layer's first call: a model first run on a batch of 256
    (accuracy evaluation) then takes 5.6 ms per image at batch 1 instead of 3.3 ms (ResNet-56, 1 thread), and
    one first run at batch 1 is slower at batch 16 (18.6 vs 16.0 ms). So batch-1 calls go to their own copy of
    the int8 graph, as a latency-bound deployment would have it; the artifact is the same state_dict.
    """

    def __init__(self, inner: nn.Module, source: nn.Module, recipe: torch_ao.Recipe,
                 runtime: str = "fx-int8") -> None:
        super().__init__()
        self.inner = inner
        self.compressbench_runtime = runtime
        self.recipe = recipe
        object.__setattr__(self, "_source", source)  # not a submodule: its fp32 weights are not part of the model
        object.__setattr__(self, "_batch1", None)  # made on the first batch-1 call (a copy starts afresh)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] == 1:
            if self._batch1 is None:
                object.__setattr__(self, "_batch1", copy.deepcopy(self.inner).eval())
            return self._batch1(x.contiguous())
        return self.inner(x.contiguous())

    def compressbench_macs(self, example: torch.Tensor) -> Counts:
        # Counted on the batched graph, with two samples: a first call at batch 1 would fix its kernels.
        return count_macs(self.inner, torch.cat([example[:1], example[:1]]))

    def compressbench_artifact(self) -> bytes:
        return to_bytes(self.inner.state_dict())

    def compressbench_reference(self, fp32: nn.Module) -> nn.Module:
        return fp32  # eager int8 against eager fp32

    def __reduce__(self) -> tuple:
        return _rebuild_fx, (to_bytes(self._source), self.recipe.as_dict(), self.compressbench_artifact(),
                             self.compressbench_runtime)


def _rebuild_fx(source: bytes, recipe: dict[str, Any], state: bytes, runtime: str) -> FxInt8Model:
    model = from_bytes(source)
    r = torch_ao.Recipe(**{**recipe, "example_shape": tuple(recipe["example_shape"])})
    return FxInt8Model(torch_ao.rebuild(model, r, from_bytes(state)), model, r, runtime)


def compiled(module: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """``module`` under ``torch.compile`` (inductor, one graph per batch size) with freezing on: weights become
    constants and are prepacked, which the int8 lowering needs and which speeds fp32 up as well."""
    import torch._inductor.config as inductor_config

    fn = torch.compile(module, dynamic=False)

    def call(x: torch.Tensor) -> torch.Tensor:
        # Set per call, not globally: compilation happens lazily at the first call of each batch size, and a
        # process-wide flag would change other code's compiles. (``options={"freezing": True}`` fails on
        # int8 graphs in torch 2.14.)
        before = inductor_config.freezing
        inductor_config.freezing = True
        try:
            return fn(x)
        finally:
            inductor_config.freezing = before

    return call


class CompiledModel(nn.Module):
    """An fp32 model run through ``torch.compile`` with freezing: the reference of compiled int8."""

    compressbench_runtime = "compiled-fp32"

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner.cpu().eval()
        object.__setattr__(self, "_fn", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._fn is None:
            object.__setattr__(self, "_fn", compiled(self.inner))
        return self._fn(x)

    def __reduce__(self) -> tuple:
        return CompiledModel, (self.inner,)


class Pt2eModel(nn.Module):
    """A PT2E int8 program (torchao ``X86InductorQuantizer``) compiled by inductor into oneDNN int8 kernels."""

    compressbench_runtime = "pt2e-int8-compiled"

    def __init__(self, program: bytes, macs: Counts, runtime: str = "pt2e-int8-compiled") -> None:
        from compressbench.adapters import torchao

        super().__init__()
        self.program = program
        self.inner = torchao.load_program(program)
        self.macs = macs
        self.compressbench_runtime = runtime
        object.__setattr__(self, "_fn", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._fn is None:
            object.__setattr__(self, "_fn", compiled(self.inner))
        return self._fn(x.contiguous())

    def train(self, mode: bool = True) -> Pt2eModel:
        """Inference only: an exported program refuses ``train()``/``eval()``, so they stop here."""
        self.training = mode
        return self

    def compressbench_artifact(self) -> bytes:
        """The int8 weights, scales and biases the program reads (the graph itself is in ``program``)."""
        return to_bytes(self.inner.state_dict())

    def compressbench_reference(self, fp32: nn.Module) -> nn.Module:
        return CompiledModel(fp32)  # compiled int8 against compiled fp32

    def compressbench_param_counts(self) -> Counts:
        return counts_of(v for k, v in self.inner.state_dict().items()
                         if "scale" not in k and "zero_point" not in k)

    def compressbench_macs(self, example: torch.Tensor) -> Counts:
        return self.macs

    def __reduce__(self) -> tuple:
        return Pt2eModel, (self.program, self.macs, self.compressbench_runtime)


class OrtModel(nn.Module):
    """An ONNX model run by ONNX Runtime (CPU): tensor → numpy → ``session.run`` → tensor.

    One session per intra-op thread count, made on first use, so ``measure.threads`` (batch-1 latency) and
    ``measure.throughput_threads`` apply to ONNX Runtime exactly as they do to torch.
    """

    def __init__(self, data: bytes, runtime: str, macs: Counts) -> None:
        super().__init__()
        self.data = data
        self.compressbench_runtime = runtime
        self.macs = macs
        object.__setattr__(self, "_sessions", {})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        threads = torch.get_num_threads()
        entry = self._sessions.get(threads)
        if entry is None:  # once per thread count: nothing but the run itself inside the timed calls
            sess = ort_adapter.session(self.data, threads)
            entry = self._sessions[threads] = (sess, ort_adapter.input_name(sess))
        return ort_adapter.run(entry[0], x, entry[1])

    def compressbench_artifact(self) -> bytes:
        return self.data

    def compressbench_reference(self, fp32: nn.Module) -> nn.Module:
        data, _ = onnx_adapter.export(fp32, torch.zeros(1, *self._input_shape()))
        return OrtModel(data, "onnxruntime-fp32", self.macs)  # ONNX Runtime int8 against ONNX Runtime fp32

    def _input_shape(self) -> tuple[int, ...]:
        dims = onnx_adapter.load(self.data).graph.input[0].type.tensor_type.shape.dim
        return tuple(d.dim_value for d in dims[1:])

    def compressbench_param_counts(self) -> Counts:
        return onnx_adapter.weight_counts(self.data)

    def compressbench_macs(self, example: torch.Tensor) -> Counts:
        return self.macs

    def __reduce__(self) -> tuple:
        return OrtModel, (self.data, self.compressbench_runtime, self.macs)


class CastModel(nn.Module):
    """An fp16/bf16 copy of a model run eagerly: inputs cast down, logits cast back to fp32."""

    def __init__(self, inner: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.inner = inner.to(dtype)
        self.dtype = dtype
        self.compressbench_runtime = f"eager-{'fp16' if dtype == torch.float16 else 'bf16'}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.to(self.dtype)).float()


def fp32_route(name: str, fp32: nn.Module, example: torch.Tensor, macs: Counts) -> nn.Module:
    """The fp32 model on runtime ``name``: eager, compiled (inductor + freezing) or onnxruntime."""
    fp32 = fp32.cpu().eval()
    if name == "eager":
        return fp32
    if name == "compiled":
        return CompiledModel(fp32)
    data, _ = onnx_adapter.export(fp32, example)
    return OrtModel(data, "onnxruntime-fp32", macs)
