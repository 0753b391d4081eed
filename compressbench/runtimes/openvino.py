"""OpenVINO deployables (optional: ``pip install "compressbench[openvino]"``): fp32 from an ONNX export, and
int8 calibrated by NNCF. The IR (``.xml`` + ``.bin``) is the artifact; settings are explicit (``adapters.openvino``).

``calibrate_int8`` makes ``openvino`` a ``quantize.backend``: ``quantization.methods`` registers it by name
(``calibrated_by_runtime``), so the backend is known before torch is imported; this file, its adapter and that
line are all a new runtime takes.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import torch

from compressbench.adapters import onnx as onnx_adapter
from compressbench.adapters import openvino as ov_adapter
from compressbench.models.counting import count_macs
from compressbench.runtimes.base import Arch, Counts, Deployable, register_runtime
from compressbench.runtimes.eager import Eager, cpu_module
from compressbench.runtimes.exporting import Exported


@register_runtime
class OpenVino(Deployable):
    """A model in the OpenVINO CPU runtime; one compiled request per thread count, made outside the timing."""

    kind: ClassVar[str] = "openvino"
    requires: ClassVar[tuple[tuple[str, ...], str]] = (("openvino", "nncf"), "openvino")  # packages, pip extra

    def __init__(self, model: Any, arch: Arch, runtime: str, macs: Counts, counts: Counts) -> None:
        super().__init__(arch, runtime)
        self.model, self._macs, self._counts = model, macs, counts
        self._requests: dict[int, Any] = {}

    def _request(self) -> Any:
        threads = torch.get_num_threads()
        if threads not in self._requests:
            self._requests[threads] = ov_adapter.compile_request(self.model, threads)
        return self._requests[threads]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return ov_adapter.run(self._request(), x)

    def timer(self, x: torch.Tensor) -> Callable[[], object]:
        return ov_adapter.timer(self._request(), x)

    def timed_form(self) -> str:
        return "OpenVINO IR compiled for the CPU, zero-copy input and output"

    @classmethod
    def from_fp32(cls, fp32: Eager, example: torch.Tensor) -> OpenVino:
        """The fp32 route ``openvino``: the model exported to ONNX, read by OpenVINO."""
        ov_adapter.require()
        module = cpu_module(fp32.module).eval()
        data, _ = onnx_adapter.export(module, example)
        return cls(ov_adapter.from_onnx(data), fp32.arch, "openvino-fp32", count_macs(module, example[:1]),
                   onnx_adapter.weight_counts(data))

    @classmethod
    def calibrate_int8(cls, fp32: Eager, batches: list[torch.Tensor]) -> tuple[OpenVino, list[dict[str, str]]]:
        """NNCF static int8 of the fp32 route, calibrated on ``batches``; with its fallback report."""
        base = cls.from_fp32(fp32, batches[0][:1])
        model = ov_adapter.quantize_int8(base.model, batches)
        return cls(model, fp32.arch, "openvino-int8", base._macs, base._counts), ov_adapter.fake_quantized_ops(model)

    def reference(self, fp32: Deployable) -> Deployable:
        assert isinstance(fp32, Eager)
        return OpenVino.from_fp32(fp32, torch.zeros(1, *self.arch.input_shape))  # OpenVINO int8 vs its fp32

    def artifact_bytes(self) -> bytes:
        xml, weights = ov_adapter.to_ir(self.model)
        return xml + weights

    def size_file(self) -> str:
        stem = "model_int8" if "int8" in self.runtime else "model"
        return f"{stem}.xml + {stem}.bin (OpenVINO IR)"

    def param_counts(self) -> Counts:
        return self._counts

    def macs(self, example: torch.Tensor) -> Counts:
        return self._macs

    def save(self, directory: Path) -> dict[str, Any]:
        xml, weights = ov_adapter.to_ir(self.model)
        (directory / "model.xml").write_bytes(xml)
        (directory / "model.bin").write_bytes(weights)
        return {"arch": self.arch.as_dict(), "runtime": self.runtime, "macs": list(self._macs),
                "counts": list(self._counts), "xml": "model.xml", "bin": "model.bin"}

    @classmethod
    def load(cls, directory: Path, meta: dict[str, Any], device: torch.device) -> OpenVino:
        model = ov_adapter.from_ir((directory / meta["xml"]).read_bytes(), (directory / meta["bin"]).read_bytes())
        return cls(model, Arch.from_dict(meta["arch"]), meta["runtime"], tuple(meta["macs"]),  # type: ignore[arg-type]
                   tuple(meta["counts"]))  # type: ignore[arg-type]

    def export(self, directory: Path, example: torch.Tensor) -> Exported:
        stem = "model_int8" if "int8" in self.runtime else "model"
        xml, weights = ov_adapter.to_ir(self.model)
        (directory / f"{stem}.xml").write_bytes(xml)
        (directory / f"{stem}.bin").write_bytes(weights)
        return Exported({f"{stem}.xml": "openvino"})
