"""Timing an artifact against the fp32 baseline on every fp32 runtime (``speedup_vs_best_fp32``).

Called by ``measure`` on each measurement of an artifact whose stage names fp32 routes (``quantize``, and the
chain's last stage), so these speedups are timed in the same process as the row's other numbers — never replayed
from a cache entry made on another machine or with other threads. Routes are ``RUNTIMES`` names; each builds an
fp32 model on its runtime through ``from_fp32``.

Like with like: an fp32 model (a pruned, distilled or factorized one) is built on every route too, so it is
compared on its fastest runtime, not timed on eager against the best dense runtime; any other artifact (int8,
...) runs as it deploys. Every model on every route is timed in one interleaved loop, and the fastest of each side
is chosen on the pooled samples of all rounds: a disturbed round cannot make one route look fastest or slowest.
"""
from __future__ import annotations

import copy
import hashlib
import statistics
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import torch

from compressbench.config import MeasureConfig
from compressbench.measure.latency import (
    Rounds,
    median_interval,
    num_threads,
    per_round_ratios,
    pooled_median,
    quantile,
    time_interleaved,
)
from compressbench.runtimes import Deployable, Eager, fp32_route

FP32, MODEL = "fp32@", "model@"  # timed calls: the baseline on a route, the measured model on a route


def against_fp32_routes(artifact: Deployable, fp32: Eager, routes: Sequence[str], example: torch.Tensor,
                        cfg: MeasureConfig) -> dict[str, Any]:
    """Batch-1 speedups of ``artifact`` against ``fp32`` on each route, paired and interleaved like ``measure``
    (medians of per-round ratios). ``speedup_vs_<route>_fp32`` is the model on that route against fp32 on it
    (an fp32 model runs on each route; another artifact on its own runtime); ``speedup_vs_best_fp32`` is the
    model on its fastest route (``fastest_route``) against fp32 on the fastest fp32 route (``best_fp32_runtime``),
    both chosen on pooled samples."""
    if artifact.device.type != "cpu":
        return {"fp32_routes_skipped": "the model runs on a GPU; fp32 routes are CPU runtimes"}
    base = contiguous_cpu(fp32)
    own = None if isinstance(artifact, Eager) else artifact  # an fp32 model goes on every route; others as is
    model = contiguous_cpu(artifact) if own is None else None
    out: dict[str, Any] = {}
    skipped: list[str] = []
    calls = {}
    with num_threads(cfg.threads):
        for route in routes:
            try:
                reference = built_reference(route, base, example).timer(example)
                # The measured fp32 model is not cached: each one is built once.
                mine = fp32_route(route).from_fp32(model, example).timer(example) if model is not None else None
            except ImportError as e:  # an optional runtime that is not installed: say how to get it
                skipped.append(f"{route} (not installed: {e})")
                continue
            except Exception as e:  # noqa: BLE001 — a route that cannot run this model is reported, not fatal
                skipped.append(f"{route} ({type(e).__name__}: {str(e)[:120]})")
                continue
            calls[FP32 + route] = reference
            if mine is not None:
                calls[MODEL + route] = mine
        if own is not None:
            calls[MODEL + own.runtime] = own.timer(example)
        if skipped:
            out["fp32_routes_skipped"] = "; ".join(skipped)
        if not any(n.startswith(FP32) for n in calls):
            return out
        got, _ = time_interleaved(calls, torch.device("cpu"), warmup=cfg.warmup, iters=cfg.iters,
                                  rounds=cfg.rounds, min_rounds=cfg.min_rounds, tolerance=cfg.tolerance,
                                  min_time_s=cfg.min_time_s, figure=lambda g: per_round_ratios(*best_pair(g)[2:]))
    for name in (n for n in got if n.startswith(FP32)):
        route = name[len(FP32):]
        ratios = per_round_ratios(got[name], got[MODEL + route] if own is None else got[MODEL + own.runtime])
        out[f"speedup_vs_{route}_fp32"] = statistics.median(ratios)
        out[f"speedup_vs_{route}_fp32_iqr"] = _iqr(ratios)
        if FP32 + "eager" in got:  # where the eager baseline itself sits on this route's axis (figures' B)
            out[f"baseline_eager_vs_{route}_fp32"] = statistics.median(per_round_ratios(got[name],
                                                                                         got[FP32 + "eager"]))
    reference, fastest, ref_samples, model_samples = best_pair(got)
    ratios = per_round_ratios(ref_samples, model_samples)
    low, high = median_interval(ratios)
    out.update(speedup_vs_best_fp32=statistics.median(ratios), speedup_vs_best_fp32_iqr=_iqr(ratios),
               speedup_vs_best_fp32_lo=low, speedup_vs_best_fp32_hi=high, best_fp32_runtime=reference,
               fastest_route=fastest)
    return out


def best_pair(got: Rounds) -> tuple[str, str, list[list[float]], list[list[float]]]:
    """(fastest fp32 route, the measured model's fastest route, their samples), each chosen on the median of
    all its samples over all rounds."""
    reference = min((n for n in got if n.startswith(FP32)), key=lambda n: pooled_median(got[n]))
    model = min((n for n in got if n.startswith(MODEL)), key=lambda n: pooled_median(got[n]))
    return reference[len(FP32):], model[len(MODEL):], got[reference], got[model]


def _iqr(values: list[float]) -> float:
    return quantile(values, 0.75) - quantile(values, 0.25)


def contiguous_cpu(fp32: Eager) -> Eager:
    """A CPU copy of ``fp32`` in the default memory format: what every fp32 route exports or compiles."""
    return Eager(copy.deepcopy(fp32.module).cpu().eval().to(memory_format=torch.contiguous_format), fp32.arch)


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
    built = fp32_route(route).from_fp32(base, example)
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
