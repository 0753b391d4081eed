"""The only importer of onnxruntime: inference sessions and ``onnxruntime.quantization`` (QDQ int8).

Static int8 is QDQ format, per-channel symmetric int8 weights and uint8 activations calibrated on the same
batches the torch backends use (a ``CalibrationDataReader`` over them); ONNX Runtime fuses each
DequantizeLinear → op → QuantizeLinear into an int8 kernel when it loads the model. Optional dependency:
In the default install.
"""
from __future__ import annotations

import importlib.util
import logging
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    import onnxruntime as ort

OBSERVERS = ("minmax", "entropy", "percentile", "distribution")
DYNAMIC_OPS = ["MatMul", "Gemm"]  # ConvInteger (dynamic conv) is slower than fp32 conv in ORT: leave convs be


def available() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


def require() -> Any:
    """The ``onnxruntime`` module, imported on first use (it costs half a second at start-up); a clear error
    without it."""
    try:
        import onnxruntime
    except ImportError:
        raise ImportError('quantize.backend=onnxruntime needs onnxruntime (part of the default install): '
                          'pip install onnxruntime') from None
    return onnxruntime


def session(data: bytes, threads: int) -> ort.InferenceSession:
    """A CPU session on ``threads`` intra-op threads, fully optimised, without spin-waiting between calls
    (spinning threads would steal the core the interleaved torch reference is timed on)."""
    ort = require()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def input_name(sess: ort.InferenceSession) -> str:
    return sess.get_inputs()[0].name


def run(sess: ort.InferenceSession, x: torch.Tensor, name: str | None = None) -> torch.Tensor:
    array = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
    return torch.from_numpy(sess.run(None, {name or input_name(sess): array})[0])


@cache
def _batches_reader() -> type:
    """The calibration-batches reader class (its base is onnxruntime's, imported on first use)."""
    from onnxruntime.quantization import CalibrationDataReader

    class Batches(CalibrationDataReader):
        """The calibration batches, fed to ONNX Runtime's calibrator one by one."""

        def __init__(self, batches: list[torch.Tensor], input_name: str) -> None:
            self.batches, self.input_name, self.i = batches, input_name, 0

        def get_next(self) -> dict[str, np.ndarray] | None:
            if self.i >= len(self.batches):
                return None
            self.i += 1
            return {self.input_name: self.batches[self.i - 1].cpu().numpy().astype(np.float32)}

        def rewind(self) -> None:
            self.i = 0

    return Batches


class _DropNoise(logging.Filter):
    """onnxruntime.quantization logs through the root logger; these two lines are advice we already follow
    (pre-processing) or about BatchNorm scales it rightly leaves per-tensor."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        return not ("is out-of-range for weight" in text or "consider to run pre-processing" in text)


@contextmanager
def _quiet() -> Iterator[None]:
    noise = _DropNoise()
    root = logging.getLogger()
    root.addFilter(noise)
    try:
        yield
    finally:
        root.removeFilter(noise)


def quantize_static(fp32: bytes, batches: list[torch.Tensor], observer: str, per_channel: bool,
                    exclude: list[str], input_name: str = "input") -> bytes:
    """QDQ int8 ONNX bytes of ``fp32``: shape inference and graph optimisation first (as ORT advises)."""
    require()
    from onnxruntime import quantization as ortq
    from onnxruntime.quantization.shape_inference import quant_pre_process

    method = {"minmax": ortq.CalibrationMethod.MinMax, "entropy": ortq.CalibrationMethod.Entropy,
              "percentile": ortq.CalibrationMethod.Percentile,
              "distribution": ortq.CalibrationMethod.Distribution}[observer]
    with tempfile.TemporaryDirectory(prefix="compressbench-ort-") as tmp, _quiet():
        src, pre, out = Path(tmp, "fp32.onnx"), Path(tmp, "pre.onnx"), Path(tmp, "int8.onnx")
        src.write_bytes(fp32)
        quant_pre_process(str(src), str(pre))
        reader = _batches_reader()(batches, input_name)
        ortq.quantize_static(str(pre), str(out), reader, quant_format=ortq.QuantFormat.QDQ,
                             per_channel=per_channel, activation_type=ortq.QuantType.QUInt8,
                             weight_type=ortq.QuantType.QInt8, calibrate_method=method,
                             nodes_to_exclude=exclude or None,
                             extra_options={"WeightSymmetric": True, "ActivationSymmetric": False})
        return out.read_bytes()


def quantize_dynamic(fp32: bytes, per_channel: bool, exclude: list[str]) -> bytes:
    """Dynamic int8 ONNX bytes: int8 MatMul/Gemm weights, activations quantized per call."""
    require()
    from onnxruntime import quantization as ortq
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(prefix="compressbench-ort-") as tmp, _quiet():
        src, pre, out = Path(tmp, "fp32.onnx"), Path(tmp, "pre.onnx"), Path(tmp, "int8.onnx")
        src.write_bytes(fp32)
        quant_pre_process(str(src), str(pre))
        ortq.quantize_dynamic(str(pre), str(out), op_types_to_quantize=DYNAMIC_OPS, per_channel=per_channel,
                              weight_type=ortq.QuantType.QInt8, nodes_to_exclude=exclude or None)
        return out.read_bytes()
