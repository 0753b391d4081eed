"""Latency and throughput, timed the way DESIGN.md §6 asks.

A speedup is never the ratio of two numbers taken at different times: the reference and the candidate are
timed in the same process, interleaved in rounds (A B, then B A, ...), and the speedup is the median of the
per-round ratios, with its interquartile range as the spread and a distribution-free 95% interval of that median
(``median_interval``). Thread count is fixed while timing.

Timing is adaptive, and a disturbed window cannot end it: after ``min_rounds`` rounds *and* ``min_time_s``
seconds of timed calls (batch 1: the latency and every speedup) it stops as soon as the 95% interval of the per-round figure (the paired ratio; without a
reference, the round's median) is within ``±tolerance`` of it — a quiet machine is done quickly, a noisy one
gets up to ``rounds``. Rounds are short and spread over that time: a quick model gets more calls per round
(``round_iters``, sized on the round before) so that ``min_rounds`` rounds span ``min_time_s``, never fewer than
``iters`` calls. A disturbance
shorter than half of that span (a neighbour's burst, 15-60 ms in issue 26) then moves a minority of rounds: the
median ignores them, and their spread keeps the interval from settling. The row's ``timing_rounds`` and
``timing_s`` say how many rounds and seconds were taken.
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


Rounds = dict[str, list[list[float]]]  # per timed call: each round's samples (ms)


def median_interval(values: list[float]) -> tuple[float, float]:
    """A distribution-free 95% interval of the median of ``values``: the order statistics x(k) and x(n+1-k), k the
    largest with P(Binomial(n, 1/2) < k) <= 2.5% (at least 1: up to 5 values it is their range)."""
    ordered, n = sorted(values), len(values)
    k, below = 1, 0.5 ** n  # below = P(B <= k - 1)
    while k < n and below + math.comb(n, k) * 0.5 ** n <= 0.025:
        below += math.comb(n, k) * 0.5 ** n
        k += 1
    return ordered[k - 1], ordered[n - k]


def per_round_ratios(reference: list[list[float]], candidate: list[list[float]]) -> list[float]:
    """Each round's reference median over its candidate median: the paired speedups."""
    return [statistics.median(r) / statistics.median(c) for r, c in zip(reference, candidate, strict=True)]


def pooled_median(rounds: list[list[float]]) -> float:
    """The median of every sample of every round."""
    return statistics.median(s for samples in rounds for s in samples)


@dataclass
class Timing:
    """Samples of one candidate, and when timed against a reference, the per-round speedups."""

    samples_ms: list[float] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)
    reference_ms: list[float] = field(default_factory=list)  # the reference's samples, when there is one
    round_ms: list[float] = field(default_factory=list)  # each round's median, when timed without a reference
    timed_s: float = 0.0  # seconds of timed calls, the reference's included

    @classmethod
    def of(cls, ratios: list[float], candidate: list[list[float]], reference: list[list[float]] | None,
           timed_s: float) -> Timing:
        flat = [s for samples in candidate for s in samples]
        if reference is None:
            return cls(flat, round_ms=[statistics.median(s) for s in candidate], timed_s=timed_s)
        return cls(flat, ratios, [s for samples in reference for s in samples], timed_s=timed_s)

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

    @property
    def speedup_interval(self) -> tuple[float | None, float | None]:
        """The 95% interval of ``speedup`` (``median_interval`` of the per-round ratios)."""
        return median_interval(self.ratios) if self.ratios else (None, None)


def settled(values: list[float], tolerance: float) -> bool:
    """Whether the 95% Student-t interval of the mean of ``log(values)`` lies within ``log(1 ± tolerance)``: the
    per-round figures agree closely enough that more rounds would not move their centre by more than that."""
    if tolerance <= 0 or len(values) < 2 or min(values) <= 0:
        return False
    logs = [math.log(v) for v in values]
    half = t95(len(logs) - 1) * statistics.stdev(logs) / math.sqrt(len(logs))
    return half <= math.log1p(tolerance)


def round_iters(call_ms: float, iters: int, round_ms: float) -> int:
    """Calls of each timed function in a round meant to last ``round_ms``, when one call of each takes
    ``call_ms`` together (as the round before took them); never fewer than ``iters``."""
    if round_ms <= 0 or call_ms <= 0:
        return iters
    return max(iters, math.ceil(round_ms / call_ms))


@torch.no_grad()
def time_interleaved(calls: dict[str, Call], device: torch.device, *, warmup: int, iters: int, rounds: int,
                     figure: Callable[[Rounds], list[float]], min_rounds: int | None = None,
                     tolerance: float = 0.0, min_time_s: float = 0.0) -> tuple[Rounds, float]:
    """Time every call in ``calls`` in rounds, each round all of them in turn (the order rotating, so a drift
    within a round cancels out); return each one's per-round samples and the seconds timed.

    ``rounds`` is the most rounds taken. With ``min_rounds`` and a ``tolerance`` > 0, timing stops early once
    ``min_rounds`` rounds and ``min_time_s`` seconds are done and ``figure`` (per-round values of the samples so
    far) has settled (``settled``).
    """
    names = list(calls)
    for _ in range(warmup):
        for name in names:
            calls[name]()
    first = rounds if min_rounds is None else max(1, min(min_rounds, rounds))
    got: Rounds = {name: [] for name in names}
    timed_ms, n = 0.0, iters
    for r in range(rounds):
        round_ms = 0.0
        for name in names[r % len(names):] + names[:r % len(names)]:
            samples = time_calls(calls[name], n, device)
            got[name].append(samples)
            round_ms += sum(samples)
        timed_ms += round_ms
        done = r + 1
        if done >= first and timed_ms >= min_time_s * 1e3 and settled(figure(got), tolerance):
            break
        # The next round sized on the one just timed (a warm-up call can be far quicker than calls in a loop on a
        # busy host): the first min_rounds rounds share what is left of min_time_s, later ones take a share each.
        left = min_time_s * 1e3 - timed_ms
        target = left / max(1, first - done) if left > 0 else min_time_s * 1e3 / first
        n = round_iters(round_ms / n, iters, target)
    return got, timed_ms / 1e3


def time_model(candidate: Call, device: torch.device, *, warmup: int, iters: int, rounds: int,
               reference: Call | None = None, min_rounds: int | None = None, tolerance: float = 0.0,
               min_time_s: float = 0.0) -> Timing:
    """Time ``candidate``; with a ``reference``, interleave the two and collect per-round speedups
    (``time_interleaved`` says when it stops: the paired ratios, or without a reference the round medians)."""
    if reference is None:
        got, seconds = time_interleaved({"candidate": candidate}, device, warmup=warmup, iters=iters,
                                        rounds=rounds, min_rounds=min_rounds, tolerance=tolerance,
                                        min_time_s=min_time_s,
                                        figure=lambda g: [statistics.median(s) for s in g["candidate"]])
        return Timing.of([], got["candidate"], None, seconds)
    # The reference first in even rounds, as before the rotation was general.
    got, seconds = time_interleaved({"reference": reference, "candidate": candidate}, device, warmup=warmup,
                                    iters=iters, rounds=rounds, min_rounds=min_rounds, tolerance=tolerance,
                                    min_time_s=min_time_s,
                                    figure=lambda g: per_round_ratios(g["reference"], g["candidate"]))
    return Timing.of(per_round_ratios(got["reference"], got["candidate"]), got["candidate"], got["reference"],
                     seconds)


def latency_metrics(artifact: Deployable, reference: Deployable | None,
                    examples: Callable[[int, torch.device], torch.Tensor], device: torch.device,
                    cfg: MeasureConfig, train_threads: int | None) -> dict[str, Any]:
    """Batch-1 latency (p50/p95) and batch-B throughput, each timed interleaved with ``reference``."""
    one, batch = examples(1, device), examples(cfg.batch_size, device)
    on_cpu = device.type == "cpu"

    def timed(x: torch.Tensor, threads: int | None, iters: int, min_time_s: float) -> tuple[Timing, int]:
        with num_threads(threads if on_cpu else None) as used:
            timing = time_model(artifact.timer(x), device, warmup=cfg.warmup, iters=iters, rounds=cfg.rounds,
                                reference=reference.timer(x) if reference is not None else None,
                                min_rounds=cfg.min_rounds, tolerance=cfg.tolerance, min_time_s=min_time_s)
        return timing, used

    latency, threads = timed(one, cfg.threads, cfg.iters, cfg.min_time_s)
    # Throughput may use the cores this job was given (all of them unless a parallel sweep split them). Its calls
    # are batches, long already: no minimum time, which would double the default run's timing.
    throughput, throughput_threads = timed(batch, cfg.throughput_threads or train_threads, max(2, cfg.iters // 4),
                                           0.0)
    low, high = latency.speedup_interval
    return {
        "latency_ms_p50": latency.p50,
        "latency_ms_p95": latency.p95,
        "throughput_ips": cfg.batch_size / (throughput.p50 / 1e3),
        # Named for its baseline (issue 25): the reference model on this artifact's own runtime family.
        "speedup_vs_reference": latency.speedup,
        "speedup_vs_reference_iqr": latency.speedup_iqr,
        "speedup_vs_reference_lo": low,
        "speedup_vs_reference_hi": high,
        "reference_runtime": reference.runtime if reference is not None else None,
        "timing_rounds": latency.rounds,
        "timing_s": latency.timed_s,
        "timed_form": artifact.timed_form(),
        "throughput_speedup": throughput.speedup,
        "threads": threads,
        "throughput_threads": throughput_threads,
        "batch_size": cfg.batch_size,
    }
