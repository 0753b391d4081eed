"""Timing an artifact against the fp32 baseline on every fp32 runtime (``speedup_vs_best_fp32``).

Called by ``measure`` on each measurement of an artifact whose stage names fp32 routes (``quantize``), so these
speedups are timed in the same process as the row's other numbers — never replayed from a cache entry made on
another machine or with other threads. Routes are ``RUNTIMES`` names; each builds the fp32 model on its runtime
through ``from_fp32``.
"""
from __future__ import annotations

import copy
import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import torch

from compressbench.config import MeasureConfig
from compressbench.measure.latency import num_threads, time_model
from compressbench.runtimes import RUNTIMES, Deployable, Eager


def against_fp32_routes(artifact: Deployable, fp32: Eager, routes: Sequence[str], example: torch.Tensor,
                        cfg: MeasureConfig) -> dict[str, Any]:
    """Batch-1 speedup of ``artifact`` against ``fp32`` on each route, paired and interleaved like ``measure``
    (median of per-round ratios); ``speedup_vs_best_fp32`` is the smallest: the speedup over the fastest fp32
    runtime, which ``best_fp32_runtime`` names."""
    if artifact.device.type != "cpu":
        return {"fp32_routes_skipped": "the model runs on a GPU; fp32 routes are CPU runtimes"}
    base = Eager(copy.deepcopy(fp32.module).cpu().eval().to(memory_format=torch.contiguous_format), fp32.arch)
    out: dict[str, Any] = {}
    skipped = []
    with num_threads(cfg.threads):
        candidate = artifact.timer(example)
        for route in routes:
            try:
                reference = built_reference(route, base, example)
                timing = time_model(candidate, torch.device("cpu"), warmup=cfg.warmup, iters=cfg.iters,
                                    rounds=cfg.rounds, reference=reference.timer(example),
                                    min_rounds=cfg.min_rounds, tolerance=cfg.tolerance)
            except ImportError as e:  # an optional runtime that is not installed: say how to get it
                skipped.append(f"{route} (not installed: {e})")
                continue
            except Exception as e:  # noqa: BLE001 — a route that cannot run this model is reported, not fatal
                skipped.append(f"{route} ({type(e).__name__}: {str(e)[:120]})")
                continue
            out[f"speedup_vs_{route}_fp32"] = timing.speedup
            out[f"speedup_vs_{route}_fp32_iqr"] = timing.speedup_iqr
    if skipped:
        out["fp32_routes_skipped"] = "; ".join(skipped)
    timed = {k: v for k, v in out.items() if k.startswith("speedup_vs_") and k.endswith("_fp32")}
    if timed:
        best = min(timed, key=timed.__getitem__)
        out.update(speedup_vs_best_fp32=timed[best], speedup_vs_best_fp32_iqr=out[f"{best}_iqr"],
                   best_fp32_runtime=best[len("speedup_vs_"):-len("_fp32")])
    return out


_BUILT: OrderedDict[tuple[Any, ...], Deployable] = OrderedDict()  # this process's fp32 models on each route
_BUILT_MAX = 8


def built_reference(route: str, base: Eager, example: torch.Tensor) -> Deployable:
    """``base`` built on ``route`` (an ONNX export, a torch.compile, ...), reused within this process for the
    same weights: a sweep's jobs share one baseline and need not export or compile it again. Only the building
    is reused; every speedup is still timed afresh, interleaved with the artifact it is compared to."""
    key = (route, weights_digest(base.module), tuple(example.shape), str(example.dtype), torch.get_num_threads())
    if key in _BUILT:
        _BUILT.move_to_end(key)
        return _BUILT[key]
    built = RUNTIMES.get(route).from_fp32(base, example)  # type: ignore[attr-defined]
    _BUILT[key] = built
    while len(_BUILT) > _BUILT_MAX:
        _BUILT.popitem(last=False)
    return built


def weights_digest(module: torch.nn.Module) -> str:
    """The module's structure and every tensor of its state, hashed."""
    h = hashlib.sha256(repr(module).encode())
    for name, tensor in module.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().reshape(-1).view(torch.uint8).numpy().tobytes()
                 if tensor.numel() else b"")
    return h.hexdigest()
