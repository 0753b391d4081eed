"""ONNX models run by ONNX Runtime (CPU): fp32 exports and QDQ / dynamic int8. The file is the artifact."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import torch

from compressbench.adapters import onnx as onnx_adapter
from compressbench.adapters import onnxruntime as ort_adapter
from compressbench.models.counting import count_macs
from compressbench.runtimes.base import Arch, Counts, Deployable, register_runtime
from compressbench.runtimes.eager import Eager, cpu_module
from compressbench.runtimes.exporting import Exported


@register_runtime
class Ort(Deployable):
    """An ONNX model in ONNX Runtime: tensor → numpy → ``session.run`` → tensor.

    One session per intra-op thread count, made on first use, so ``measure.threads`` (batch-1 latency) and
    ``measure.throughput_threads`` apply to ONNX Runtime exactly as they do to torch.
    """

    kind: ClassVar[str] = "onnxruntime"
    requires: ClassVar[tuple[tuple[str, ...], str]] = (("onnxruntime", "onnx", "onnxscript"), "onnx")

    def __init__(self, data: bytes, arch: Arch, runtime: str, macs: Counts) -> None:
        super().__init__(arch, runtime)
        self.data, self._macs = data, macs
        self._sessions: dict[int, tuple[Any, str]] = {}

    def _session(self) -> tuple[Any, str]:
        threads = torch.get_num_threads()
        entry = self._sessions.get(threads)
        if entry is None:
            sess = ort_adapter.session(self.data, threads)
            entry = self._sessions[threads] = (sess, ort_adapter.input_name(sess))
        return entry

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        sess, name = self._session()
        return ort_adapter.run(sess, x, name)

    def timer(self, x: torch.Tensor) -> Callable[[], object]:
        sess, name = self._session()  # once per thread count: nothing but the run itself inside the timed calls
        return lambda: ort_adapter.run(sess, x, name)

    @classmethod
    def from_fp32(cls, fp32: Eager, example: torch.Tensor) -> Ort:
        """The fp32 route ``onnxruntime``: the fp32 model exported to ONNX."""
        module = cpu_module(fp32.module).eval()
        data, _ = onnx_adapter.export(module, example)
        return cls(data, fp32.arch, "onnxruntime-fp32", count_macs(module, example[:1]))

    def reference(self, fp32: Deployable) -> Deployable:
        assert isinstance(fp32, Eager)
        return Ort.from_fp32(fp32, torch.zeros(1, *self.arch.input_shape))  # ORT int8 against ORT fp32

    def artifact_bytes(self) -> bytes:
        return self.data

    def size_file(self) -> str:
        return self.file_name()

    def timed_form(self) -> str:
        return f"{self.file_name()} in an onnxruntime InferenceSession"

    def file_name(self) -> str:
        return "model_int8.onnx" if "int8" in self.runtime else "model.onnx"

    def param_counts(self) -> Counts:
        return onnx_adapter.weight_counts(self.data)

    def macs(self, example: torch.Tensor) -> Counts:
        return self._macs

    def save(self, directory: Path) -> dict[str, Any]:
        (directory / "model.onnx").write_bytes(self.data)
        return {"arch": self.arch.as_dict(), "file": "model.onnx", "runtime": self.runtime, "macs": list(self._macs)}

    @classmethod
    def load(cls, directory: Path, meta: dict[str, Any], device: torch.device) -> Ort:
        return cls((directory / meta["file"]).read_bytes(), Arch.from_dict(meta["arch"]), meta["runtime"],
                   tuple(meta["macs"]))  # type: ignore[arg-type]

    def export(self, directory: Path, example: torch.Tensor) -> Exported:
        name = self.file_name()
        (directory / name).write_bytes(self.data)
        return Exported({name: "onnx"})
