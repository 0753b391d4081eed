"""Quantization methods behind the ``quantize`` stage (``stages/quantize.py``).

``methods`` turns an fp32 model into a quantized one per (method, backend); ``runtimes`` holds the modules that
run the results (int8 eager, compiled PT2E, ONNX Runtime, fp16/bf16 casts) and tell ``measure`` their runtime,
artifact and same-runtime fp32 reference; ``fakequant`` does low-bit weights with an honest packed encoding;
``report`` writes the fallback report. Third-party APIs are reached through ``compressbench.adapters`` only.
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
