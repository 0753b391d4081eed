"""FX graph-mode int8 (``torch.ao``, x86 engine): eager quantized kernels (fbgemm/oneDNN).

Saved as the fp32 source (architecture + tensors), the recipe and the int8 state_dict (quantized tensors load
with ``weights_only=True``); loading converts the source again and loads the int8 tensors into it.
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
from compressbench.runtimes.exporting import Exported, export_torchscript


@register_runtime
class FxInt8(Deployable):
    """An FX-converted int8 model.

    The ``x86`` engine settles its conv kernels at a layer's first call: a model first run on a batch of 256
    (accuracy evaluation) then takes 5.6 ms per image at batch 1 instead of 3.3 ms (ResNet-56, 1 thread), and
    one first run at batch 1 is slower at batch 16 (18.6 vs 16.0 ms). So batch-1 calls go to their own copy of
    the int8 graph, as a latency-bound deployment would have it; the artifact is the same state_dict.
    """

    kind: ClassVar[str] = "fx-int8"

    def __init__(self, inner: nn.Module, source: Eager, recipe: torch_ao.Recipe, runtime: str = "fx-int8") -> None:
        super().__init__(source.arch, runtime)
        self.inner, self.source, self.recipe = inner, source, recipe
        self._batch1: nn.Module | None = None  # made on the first batch-1 call

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] == 1:
            if self._batch1 is None:
                self._batch1 = copy.deepcopy(self.inner).eval()
            return self._batch1(x.contiguous())
        return self.inner(x.contiguous())

    def eval(self) -> FxInt8:
        self.inner.eval()
        return self

    def artifact_bytes(self) -> bytes:
        return tensor_bytes(self.inner.state_dict())

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
        # Eager int8 kernels have no standalone format but TorchScript (a trace of the converted graph, loaded
        # with torch.jit.load); the int8 state_dict beside it loads into the same recipe's converted graph.
        (directory / "model_int8_state_dict.pt").write_bytes(self.artifact_bytes())
        batch = example if len(example) >= 2 else example.repeat(2, *([1] * (example.dim() - 1)))
        return export_torchscript(self.inner, directory, batch, "model_int8.ts")
