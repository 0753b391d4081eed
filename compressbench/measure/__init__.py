"""``measure(model, ctx)``: the one measurement that runs after every stage (DESIGN.md §6)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from compressbench.deepcompression import sharing
from compressbench.measure.accuracy import accuracy_metrics
from compressbench.measure.flops import count_macs
from compressbench.measure.latency import num_threads, time_model
from compressbench.measure.size import size_metrics

if TYPE_CHECKING:
    from compressbench.context import RunContext


def device_of(model: nn.Module) -> torch.device:
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")


def runtime_of(model: nn.Module) -> str:
    """The runtime that executes the artifact; stages that change it set ``model.compressbench_runtime``."""
    return getattr(model, "compressbench_runtime", "eager")


def measure(model: nn.Module, ctx: RunContext) -> dict[str, Any]:
    """Accuracy, size, MACs and latency of ``model``; ratios against ``ctx.reference`` when there is one."""
    model.eval()
    device = device_of(model)
    metrics: dict[str, Any] = {"device": _device_name(device), "runtime": runtime_of(model)}
    shared = sharing.shared_layers(model)
    if shared:  # weight sharing (cluster): weights as their shared values before anything reads them
        sharing.sync_(model)
        distinct = sharing.distinct_values(model)
        metrics["distinct_values_max"] = max(distinct[name] for name in shared)
    metrics.update(size_metrics(model))
    metrics["macs"], metrics["effective_macs"] = count_macs(model, ctx.example_batch(1, device))
    # Timing before the big evaluation batches: some int8 kernels settle on the batch size of their first
    # calls, and a model is deployed for its timed batch sizes, not for evaluation.
    metrics.update(latency_metrics(model, ctx, device))
    routes = getattr(model, "compressbench_fp32_routes", None)
    if routes and ctx.plan.measure.latency:
        from compressbench.quantization.routes import against_fp32_routes

        metrics.update(against_fp32_routes(model, routes, ctx))
    metrics.update(accuracy_metrics(model, ctx, device))
    ref = ctx.reference
    if ref is not None and ref.metrics is not None:
        metrics["compression_ratio"] = ref.metrics["size_bytes"] / metrics["size_bytes"]
        for column, key in (("macs_reduction_pct", "macs"), ("params_reduction_pct", "params")):  # Li et al.'s %
            metrics[column] = 100 * (1 - metrics[key] / ref.metrics[key]) if ref.metrics.get(key) else None
        metrics["reference_stage"] = ref.stage
    return metrics


def latency_metrics(model: nn.Module, ctx: RunContext, device: torch.device) -> dict[str, Any]:
    """Batch-1 latency (p50/p95) and batch-B throughput, each timed interleaved with the reference model."""
    cfg = ctx.plan.measure
    if not cfg.latency:
        return {}
    reference = same_runtime_reference(model, ctx, device)
    one, batch = ctx.example_batch(1, device), ctx.example_batch(cfg.batch_size, device)
    on_cpu = device.type == "cpu"

    def timed(x: torch.Tensor, threads: int | None, iters: int):
        with num_threads(threads if on_cpu else None) as used:
            timing = time_model(lambda: model(x), device, warmup=cfg.warmup, iters=iters, rounds=cfg.rounds,
                                reference=(lambda: reference(x)) if reference is not None else None)
        return timing, used

    latency, threads = timed(one, cfg.threads, cfg.iters)
    # Throughput may use the cores this job was given (all of them unless a parallel sweep split them).
    throughput, throughput_threads = timed(batch, cfg.throughput_threads or ctx.plan.runtime.threads,
                                           max(2, cfg.iters // 4))
    return {
        "latency_ms_p50": latency.p50,
        "latency_ms_p95": latency.p95,
        "throughput_ips": cfg.batch_size / (throughput.p50 / 1e3),
        "speedup": latency.speedup,
        "speedup_iqr": latency.speedup_iqr,
        "throughput_speedup": throughput.speedup,
        "threads": threads,
        "throughput_threads": throughput_threads,
        "batch_size": cfg.batch_size,
    }


def same_runtime_reference(model: nn.Module, ctx: RunContext, device: torch.device) -> nn.Module | None:
    """The reference model, run the way ``model`` runs, so a speedup compares like with like.

    A stage whose artifact runs elsewhere (ONNX Runtime, compiled code) gives its model a
    ``compressbench_reference(fp32_model) -> callable`` that builds the fp32 reference in that same runtime;
    otherwise the reference runs eagerly on the candidate's device.
    """
    if ctx.reference is None:
        return None
    reference = ctx.reference.model
    if device_of(reference) != device:
        reference = _copy_to(reference, device)
    convert = getattr(model, "compressbench_reference", None)
    return convert(reference) if callable(convert) else reference


def _copy_to(model: nn.Module, device: torch.device) -> nn.Module:
    import copy

    return copy.deepcopy(model).to(device).eval()


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return device.type
