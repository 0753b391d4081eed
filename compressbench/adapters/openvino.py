"""OpenVINO (and NNCF for its int8 calibration) behind our names: the only module that imports them.

Every compiled model gets its settings explicitly: threads (the measurement's thread count), one stream, no
pinning, the LATENCY hint, and fp32 inference precision. Left to defaults, OpenVINO pins its threads and runs
bf16 on CPUs that have it (``INFERENCE_PRECISION_HINT`` is bf16 on this AVX-512 machine): under load that made
it 2× slower here, and it would change the precision being measured.
"""
from __future__ import annotations

import importlib.util
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

INSTALL = 'pip install "compressbench[openvino]"'


def available() -> bool:
    return importlib.util.find_spec("openvino") is not None


def require() -> Any:
    """The ``openvino`` module, imported on first use (it costs a second at start-up); a clear error without it
    (optional: ``pip install "compressbench[openvino]"``)."""
    try:
        import openvino
    except ImportError:
        raise ImportError(f"the openvino runtime needs openvino: {INSTALL}") from None
    return openvino


def settings(threads: int) -> dict[str, Any]:
    return {"INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1, "ENABLE_CPU_PINNING": False,
            "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}


@contextmanager
def _folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="compressbench-ov-") as tmp:
        yield Path(tmp)


def from_onnx(data: bytes) -> Any:
    """An OpenVINO model of ONNX bytes."""
    ov = require()
    with _folder() as tmp:
        (tmp / "model.onnx").write_bytes(data)
        return ov.Core().read_model(str(tmp / "model.onnx"))


def quantize_int8(model: Any, batches: list[torch.Tensor]) -> Any:
    """NNCF post-training int8 (its default preset: symmetric weights, per-channel), calibrated on ``batches``."""
    require()
    import nncf

    data = nncf.Dataset([b.detach().cpu().numpy().astype(np.float32) for b in batches])
    return nncf.quantize(model, data, subset_size=sum(len(b) for b in batches), fast_bias_correction=True)


def to_ir(model: Any) -> tuple[bytes, bytes]:
    """The model as OpenVINO IR: (.xml, .bin) bytes, the runtime's own files (no pickle)."""
    ov = require()
    with _folder() as tmp:
        # compress_to_fp16 defaults to True: it would halve fp32 weights on disk and change the model measured.
        ov.save_model(model, str(tmp / "model.xml"), compress_to_fp16=False)
        return (tmp / "model.xml").read_bytes(), (tmp / "model.bin").read_bytes()


def from_ir(xml: bytes, weights: bytes) -> Any:
    ov = require()
    with _folder() as tmp:
        (tmp / "model.xml").write_bytes(xml)
        (tmp / "model.bin").write_bytes(weights)
        model = ov.Core().read_model(str(tmp / "model.xml"))
        model.reshape(model.input(0).get_partial_shape())  # materialise before the files go
        return model


def compile_request(model: Any, threads: int) -> Any:
    """A reusable infer request of ``model`` compiled for the CPU with explicit settings."""
    ov = require()
    compiled = ov.Core().compile_model(model, "CPU", settings(threads))
    return compiled.create_infer_request()


def run(request: Any, x: torch.Tensor) -> torch.Tensor:
    """Logits of ``x``: the input shared with OpenVINO, the output copied out (the next call reuses its buffer)."""
    array = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
    return torch.from_numpy(np.array(request.infer({0: array}, share_inputs=True, share_outputs=True)[
        request.model_outputs[0]]))


def timer(request: Any, x: torch.Tensor) -> Callable[[], object]:
    """One inference the way a deployer calls it: the input array shared with OpenVINO (no copy), the output
    read in place. Copying both in and out cost ~35 µs of ResNet-20's 0.2 ms (issue 26)."""
    ov = require()
    array = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
    tensor = ov.Tensor(array, shared_memory=True)
    output = request.model_outputs[0]

    def call() -> object:
        request.set_input_tensor(tensor)  # a pointer, not a copy: another call on this request may have set its own
        request.infer()
        return request.get_tensor(output).data

    return call


def fake_quantized_ops(model: Any) -> list[dict[str, str]]:
    """The fallback report: each Convolution/MatMul and whether an int8 FakeQuantize feeds its weights."""
    rows = []
    for op in model.get_ordered_ops():
        kind = op.get_type_name()
        if kind not in ("Convolution", "MatMul", "GroupConvolution"):
            continue
        inputs = [op.input_value(i).get_node() for i in range(op.get_input_size())]
        feeds = {n.get_type_name() for n in inputs}
        int8 = "FakeQuantize" in feeds or any(n.get_type_name() in ("Convert", "Multiply", "Subtract")
                                              for n in inputs[1:])
        rows.append({"name": op.get_friendly_name(), "op": kind, "status": "int8" if int8 else "float",
                     "reason": "" if int8 else "NNCF left it in float (not matched by its int8 patterns)"})
    return rows


os.environ.setdefault("OPENVINO_TELEMETRY_DISABLE", "1")  # no network attempts from a telemetry client
