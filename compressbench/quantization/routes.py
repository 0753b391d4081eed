"""Timing a quantized model against the fp32 reference on every fp32 runtime (``speedup_vs_best_fp32``).

Called by ``measure`` on each measurement of a model that carries ``compressbench_fp32_routes`` (set by the
quantize stage), so these speedups are timed in the same process as the row's other numbers — never replayed
from a cache entry made on another machine or with other threads.
"""
from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from compressbench.adapters import onnxruntime as ort_adapter
from compressbench.measure.flops import count_macs
from compressbench.measure.latency import num_threads, time_model
from compressbench.quantization.runtimes import fp32_route

if TYPE_CHECKING:
    from compressbench.context import RunContext


def against_fp32_routes(model: nn.Module, routes: list[str], ctx: RunContext) -> dict[str, Any]:
    """Batch-1 speedup of ``model`` against the fp32 reference on each of ``cfg.fp32_routes``, paired and
    interleaved like ``measure`` (median of per-round ratios); ``speedup_vs_best_fp32`` is the smallest: the
    speedup over the fastest fp32 runtime."""
    mcfg = ctx.plan.measure
    if not mcfg.latency or ctx.reference is None or not routes:
        return {}
    example = ctx.example_batch(1, torch.device("cpu"))
    if any(t.device.type != "cpu" for t in (*model.parameters(), *model.buffers())):
        return {"fp32_routes_skipped": "the model runs on a GPU; fp32 routes are CPU runtimes"}
    fp32 = copy.deepcopy(ctx.reference.model).cpu().eval().to(memory_format=torch.contiguous_format)
    macs = count_macs(fp32, example)
    out: dict[str, Any] = {}
    skipped = []
    with num_threads(mcfg.threads):
        for route in routes:
            if route == "onnxruntime" and not ort_adapter.available():
                skipped.append('onnxruntime (not installed: pip install "compressbench[onnx]")')
                continue
            try:
                reference = fp32_route(route, fp32, example, macs)
                timing = time_model(lambda: model(example), torch.device("cpu"), warmup=mcfg.warmup,
                                    iters=mcfg.iters, rounds=mcfg.rounds, reference=lambda r=reference: r(example))
            except Exception as e:  # noqa: BLE001 — a route that cannot run this model is reported, not fatal
                skipped.append(f"{route} ({type(e).__name__}: {str(e)[:120]})")
                continue
            out[f"speedup_vs_{route}_fp32"] = timing.speedup
    if skipped:
        out["fp32_routes_skipped"] = "; ".join(skipped)
    timed = {k: v for k, v in out.items() if k.startswith("speedup_vs_")}
    if timed:
        best = min(timed, key=timed.__getitem__)
        out.update(speedup_vs_best_fp32=timed[best], best_fp32_runtime=best[len("speedup_vs_"):-len("_fp32")])
    return out
