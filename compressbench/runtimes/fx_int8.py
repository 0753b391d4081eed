"""FX graph-mode int8 (``torch.ao``, x86 engine): eager quantized kernels (fbgemm/oneDNN).

Saved as the fp32 source (architecture + tensors), the recipe and the int8 state_dict (quantized tensors load
with ``weights_only=True``); loading converts the source again and loads the int8 tensors into it.

Deployed, it is a TorchScript file (``model_int8.ts``: the converted graph traced, what ``export`` writes): a user
loads it with ``torch.jit.load``, without compressbench. That file is what runs here — timed and evaluated —
and what ``deployable_bytes`` counts: the Python GraphModule gives the same logits but took about twice as long
at batch 1 (ResNet-20, issue 26), and its int8 state_dict (``size_bytes``) needs our recipe to rebuild. It stays
TorchScript although torch 2.14 deprecates ``torch.jit``: ``torch.export`` cannot export the packed int8 weights,
and a ``.pt2`` load is not pickle-free (``runtimes/exporting.py`` says what was found).
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from compressbench.adapters import torch_ao
from compressbench.models.counting import count_macs, param_counts
from compressbench.runtimes.base import Counts, Deployable, load_tensors, register_runtime, tensor_bytes
from compressbench.runtimes.eager import Eager, load_module, save_module
from compressbench.runtimes.exporting import Exported, load_torchscript, torchscript_bytes

SCRIPT = "model_int8.ts"


@register_runtime
class FxInt8(Deployable):
    """An FX-converted int8 model.

    The ``x86`` engine settles its conv kernels at a layer's first call: a model first run on a batch of 256
    (accuracy evaluation) then takes 5.6 ms per image at batch 1 instead of 3.3 ms (ResNet-56, 1 thread), and
    one first run at batch 1 is slower at batch 16 (18.6 vs 16.0 ms). So batch-1 calls go to their own load of
    the TorchScript file, as a latency-bound deployment would have it; the artifact is the same state_dict.
    """

    kind: ClassVar[str] = "fx-int8"

    def __init__(self, inner: nn.Module, source: Eager, recipe: torch_ao.Recipe, runtime: str = "fx-int8") -> None:
        super().__init__(source.arch, runtime)
        self.inner, self.source, self.recipe = inner, source, recipe
        self._script: bytes | None = None
        self._script_error: str | None = None
        self._runs: dict[bool, nn.Module] = {}  # batch 1 or not → the deployed module, loaded on first use

    def script(self) -> bytes | None:
        """The TorchScript file of this model, traced once; None where tracing fails (``timed_form`` says why)."""
        if self._script is None and self._script_error is None:
            try:
                self._script = torchscript_bytes(self.inner, torch.zeros(2, *self.arch.input_shape))
            except Exception as e:  # noqa: BLE001 — a graph the tracer cannot follow runs as the GraphModule
                self._script_error = f"{type(e).__name__}: {str(e)[:160]}"
        return self._script

    def _module(self, batch1: bool) -> nn.Module:
        if batch1 not in self._runs:  # a load of its own per kind of batch: each settles its kernels
            data = self.script()
            self._runs[batch1] = load_torchscript(data) if data is not None else \
                copy.deepcopy(self.inner).eval() if batch1 else self.inner
        return self._runs[batch1]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self._module(x.shape[0] == 1)(x.contiguous())

    def timed_form(self) -> str:
        if self.script() is not None:
            return f"{SCRIPT} (TorchScript, torch.jit.load)"
        return f"FX GraphModule in Python (no TorchScript: {self._script_error})"

    def eval(self) -> FxInt8:
        self.inner.eval()
        return self

    def artifact_bytes(self) -> bytes:
        return tensor_bytes(self.inner.state_dict())

    def size_file(self) -> str:
        return "int8 state_dict (rebuilt by compressbench's FX recipe)"

    def deployable_file(self) -> tuple[str, bytes] | None:
        data = self.script()
        return (f"{SCRIPT} (TorchScript)", data) if data is not None else None

    def param_counts(self) -> Counts:
        return param_counts(self.inner)

    def macs(self, example: torch.Tensor) -> Counts:
        # Counted on the batched graph, with two samples: a first call at batch 1 would fix its kernels.
        return count_macs(self.inner, torch.cat([example[:1], example[:1]]))

    def save(self, directory: Path) -> dict[str, Any]:
        (directory / "int8_weights.pt").write_bytes(self.artifact_bytes())
        return {"source": save_module(self.source.module, self.arch, directory, prefix="fp32_"),
                "recipe": self.recipe.as_dict(), "int8": "int8_weights.pt", "runtime": self.runtime}

    @classmethod
    def load(cls, directory: Path, meta: dict[str, Any], device: torch.device) -> FxInt8:
        module, arch = load_module(directory, meta["source"])
        r = meta["recipe"]
        recipe = torch_ao.Recipe(**{**r, "example_shape": tuple(r["example_shape"])})
        inner = torch_ao.rebuild(module, recipe, load_tensors(directory / meta["int8"]))
        return cls(inner, Eager(module, arch), recipe, meta.get("runtime", "fx-int8"))

    def export(self, directory: Path, example: torch.Tensor) -> Exported:
        # Eager int8 kernels have no standalone format but TorchScript (the file timed above, loaded with
        # torch.jit.load; torch.export cannot export them, see exporting.py); the int8 state_dict beside it loads
        # into the same recipe's converted graph.
        (directory / "model_int8_state_dict.pt").write_bytes(self.artifact_bytes())
        data = self.script()
        if data is None:
            return Exported(skipped={"torchscript": str(self._script_error)})
        (directory / SCRIPT).write_bytes(data)
        return Exported({SCRIPT: "torchscript"})
