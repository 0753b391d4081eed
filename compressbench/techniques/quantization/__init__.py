"""Quantization methods behind the ``quantize`` stage (``stages/quantize.py``).

``methods`` is the registry of handlers, one per (method, backend), that turn an fp32 model into a quantized one
(torch-free at load: the quantize options are checked against it before torch is imported); ``result`` is what
every handler returns (the deployable, the fallback report rows, fields, files) and the helpers they share;
``training`` does QAT and low-bit weight training; ``fakequant`` does low-bit weights with an honest packed
encoding. The results run on ``compressbench.runtimes`` (FX int8, compiled PT2E, ONNX Runtime, OpenVINO, casts),
which tell ``measure`` their runtime, artifact and same-runtime fp32 reference. Third-party APIs are reached
through ``compressbench.adapters`` only.
"""
from __future__ import annotations

from typing import Any

__all__ = ["Unsupported"]


def __getattr__(name: str) -> Any:
    # ``Unsupported`` (the pipeline maps it to status ``unsupported``) lives in runtimes.base, which imports torch:
    # importing ``methods`` must not (the quantize config is checked against it before torch is imported).
    if name == "Unsupported":
        from compressbench.runtimes.base import Unsupported

        return Unsupported
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
