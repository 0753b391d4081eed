"""Latency and throughput, timed the way DESIGN.md §6 asks.

A speedup is never the ratio of two numbers taken at different times: the reference and the candidate are
timed in the same process, interleaved in rounds (A B, then B A, ...), and the speedup is the median of the
per-round ratios, with its interquartile range as the spread. Thread count is fixed while timing.

Timing is adaptive: after ``min_rounds`` rounds it stops as soon as the 95% interval of the per-round figure (the
paired ratio; without a reference, the round's median) is within ``±tolerance`` of it — a quiet machine is done in
a few rounds, a noisy one gets up to ``rounds``. The row's ``timing_rounds`` says how many were taken.
"""
from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from compressbench.infra.tdist import t95

if TYPE_CHECKING:
    from compressbench.config import MeasureConfig
    from compressbench.runtimes import Deployable

Call = Callable[[], object]


@contextmanager
def num_threads(n: int | None) -> Iterator[int]:
    """Run the body with ``n`` intra-op threads (None keeps the current number); yields the number used."""
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(call: Call, iters: int, device: torch.device) -> list[float]:
    """Wall milliseconds of each of ``iters`` calls (synchronised on CUDA so the GPU work is inside)."""
    samples = []
    for _ in range(iters):
        _sync(device)
        start = time.perf_counter()
        call()
        _sync(device)
        samples.append((time.perf_counter() - start) * 1e3)
    return samples


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    pos = q * (len(ordered) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


@dataclass
class Timing:
    """Samples of one candidate, and when timed against a reference, the per-round speedups."""

    samples_ms: list[float] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)
    reference_ms: list[float] = field(default_factory=list)  # the reference's samples, when there is one
    round_ms: list[float] = field(default_factory=list)  # each round's median, when timed without a reference

    @property
    def rounds(self) -> int:
        return len(self.ratios) or len(self.round_ms)

    @property
    def p50(self) -> float:
        return quantile(self.samples_ms, 0.5)

    @property
    def p95(self) -> float:
        return quantile(self.samples_ms, 0.95)

    @property
    def speedup(self) -> float | None:
        return statistics.median(self.ratios) if self.ratios else None

    @property
    def speedup_iqr(self) -> float | None:
        return quantile(self.ratios, 0.75) - quantile(self.ratios, 0.25) if self.ratios else None


def settled(values: list[float], tolerance: float) -> bool:
    """Whether the 95% Student-t interval of the mean of ``log(values)`` lies within ``log(1 ± tolerance)``: the
    per-round figures agree closely enough that more rounds would not move their centre by more than that."""
    if tolerance <= 0 or len(values) < 2 or min(values) <= 0:
        return False
    logs = [math.log(v) for v in values]
    half = t95(len(logs) - 1) * statistics.stdev(logs) / math.sqrt(len(logs))
    return half <= math.log1p(tolerance)


@torch.no_grad()
def time_model(candidate: Call, device: torch.device, *, warmup: int, iters: int, rounds: int,
               reference: Call | None = None, min_rounds: int | None = None, tolerance: float = 0.0) -> Timing:
    """Time ``candidate``; with a ``reference``, interleave the two and collect per-round speedups.

    ``rounds`` is the most rounds taken; with ``min_rounds`` and a ``tolerance`` > 0 timing stops early once the
    rounds' figures have settled (``settled``): the paired ratios, or without a reference the round medians.
    """
    for _ in range(warmup):
        candidate()
        if reference is not None:
            reference()
    timing = Timing()
    first = rounds if min_rounds is None else max(1, min(min_rounds, rounds))
    for r in range(rounds):
        if reference is None:
            samples = time_calls(candidate, iters, device)
            timing.samples_ms += samples
            timing.round_ms.append(statistics.median(samples))
        else:
            # Alternate which goes first so a drift within the round (turbo, a neighbour's job) cancels out.
            if r % 2 == 0:
                ref = time_calls(reference, iters, device)
                cand = time_calls(candidate, iters, device)
            else:
                cand = time_calls(candidate, iters, device)
                ref = time_calls(reference, iters, device)
            timing.samples_ms += cand
            timing.reference_ms += ref
            timing.ratios.append(statistics.median(ref) / statistics.median(cand))
        if r + 1 >= first and settled(timing.ratios or timing.round_ms, tolerance):
            break
    return timing


def latency_metrics(artifact: Deployable, reference: Deployable | None,
                    examples: Callable[[int, torch.device], torch.Tensor], device: torch.device,
                    cfg: MeasureConfig, train_threads: int | None) -> dict[str, Any]:
    """Batch-1 latency (p50/p95) and batch-B throughput, each timed interleaved with ``reference``."""
    one, batch = examples(1, device), examples(cfg.batch_size, device)
    on_cpu = device.type == "cpu"

    def timed(x: torch.Tensor, threads: int | None, iters: int) -> tuple[Timing, int]:
        with num_threads(threads if on_cpu else None) as used:
            timing = time_model(artifact.timer(x), device, warmup=cfg.warmup, iters=iters, rounds=cfg.rounds,
                                reference=reference.timer(x) if reference is not None else None,
                                min_rounds=cfg.min_rounds, tolerance=cfg.tolerance)
        return timing, used

    latency, threads = timed(one, cfg.threads, cfg.iters)
    # Throughput may use the cores this job was given (all of them unless a parallel sweep split them).
    throughput, throughput_threads = timed(batch, cfg.throughput_threads or train_threads, max(2, cfg.iters // 4))
    return {
        "latency_ms_p50": latency.p50,
        "latency_ms_p95": latency.p95,
        "throughput_ips": cfg.batch_size / (throughput.p50 / 1e3),
        "speedup": latency.speedup,
        "speedup_iqr": latency.speedup_iqr,
        "timing_rounds": latency.rounds,
        "throughput_speedup": throughput.speedup,
        "threads": threads,
        "throughput_threads": throughput_threads,
        "batch_size": cfg.batch_size,
    }
