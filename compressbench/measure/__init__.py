"""``measure(artifact, inputs)``: the one measurement that runs after every stage (DESIGN.md §6).

A leaf: it takes a ``Deployable`` and asks it everything (its bytes, counts, MACs, same-runtime reference, how
to time a call); the fp32 routes behind ``speedup_vs_best_fp32`` are ``RUNTIMES`` names. No technique code is
imported here, so a new technique or runtime never touches measurement.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch

from compressbench.config import MeasureConfig
from compressbench.measure.accuracy import accuracy_metrics
from compressbench.measure.latency import latency_metrics
from compressbench.measure.routes import against_fp32_routes
from compressbench.measure.size import compression_ratio, size_metrics
from compressbench.runtimes import Deployable, Eager


@dataclass(frozen=True)
class Baseline:
    """The reference every ratio is taken against: its fp32 artifact and its metrics."""

    stage: str
    artifact: Eager
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Inputs:
    """What a measurement reads: real batches, the settings, and the baseline (None for the baseline itself)."""

    examples: Callable[[int, torch.device], torch.Tensor]  # n normalised test images on a device
    batches: Callable[[str, torch.device], Iterable[tuple[torch.Tensor, ...]]]  # a split's eval batches
    cfg: MeasureConfig
    num_classes: int
    train_threads: int | None = None  # the job's thread budget (throughput may use it)
    baseline: Baseline | None = None
    fp32_routes: tuple[str, ...] = ()  # RUNTIMES names to time the artifact against, fp32 each


def measure(artifact: Deployable, inputs: Inputs) -> dict[str, Any]:
    """Accuracy, size, MACs and latency of ``artifact``; ratios against ``inputs.baseline`` when there is one."""
    artifact.eval()
    device = artifact.device
    metrics: dict[str, Any] = {"device": _device_name(device), "runtime": artifact.runtime}
    metrics.update(artifact.extra_metrics())
    metrics.update(size_metrics(artifact))
    metrics["macs"], metrics["effective_macs"] = artifact.macs(inputs.examples(1, device))
    # Timing before the big evaluation batches: some int8 kernels settle on the batch size of their first
    # calls, and a model is deployed for its timed batch sizes, not for evaluation.
    if inputs.cfg.latency:
        reference = same_runtime_reference(artifact, inputs.baseline, device)
        metrics.update(latency_metrics(artifact, reference, inputs.examples, device, inputs.cfg,
                                       inputs.train_threads))
        if inputs.fp32_routes and inputs.baseline is not None:
            metrics.update(against_fp32_routes(artifact, inputs.baseline.artifact, inputs.fp32_routes,
                                               inputs.examples(1, torch.device("cpu")), inputs.cfg))
    metrics.update(accuracy_metrics(artifact, inputs.batches, device, inputs.num_classes))
    base = inputs.baseline
    if base is not None and base.metrics:
        metrics["compression_ratio"] = compression_ratio(base.metrics, metrics)  # of the files a user runs
        for column, key in (("macs_reduction_pct", "macs"), ("params_reduction_pct", "params")):  # Li et al.'s %
            metrics[column] = 100 * (1 - metrics[key] / base.metrics[key]) if base.metrics.get(key) else None
        metrics["reference_stage"] = base.stage
    return metrics


def same_runtime_reference(artifact: Deployable, baseline: Baseline | None,
                           device: torch.device) -> Deployable | None:
    """The baseline run the way ``artifact`` runs (its ``reference``), on its device: like with like."""
    if baseline is None:
        return None
    fp32 = baseline.artifact
    if fp32.device != device:
        import copy

        fp32 = Eager(copy.deepcopy(fp32.module).to(device).eval(), fp32.arch)
    return artifact.reference(fp32)


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return device.type


__all__ = ["Baseline", "Inputs", "measure"]
