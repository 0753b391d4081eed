"""What the runner adds to measurement: which fp32 routes a stage's output is timed against, and the
measurements of cache hits a process already took (``MeasureMemo``)."""
from __future__ import annotations

import copy
import functools
from typing import Any

from compressbench.config import Plan
from compressbench.stages import STAGES


def timing_routes(plan: Plan, index: int, name: str) -> list[str]:
    """The fp32 runtimes a stage's output is timed against: what its kind asks for (quantize), and for the chain's
    last stage every ``measure.fp32_routes`` — so each branch's final model has a ``speedup_vs_best_fp32``."""
    scfg = plan.stages[name]
    routes = list(STAGES.get(scfg.stage).timing_routes(scfg))
    if index == len(plan.chain) - 1 and name != plan.reference:
        routes += [r for r in plan.measure.fp32_routes or [] if r not in routes]
    return routes


@functools.cache
def process_memo() -> MeasureMemo:
    """The memo this process shares between the runs the CLI and ``compressbench.run`` make (a sweep's jobs, a
    notebook's runs): made once, on first use. A call of ``pipeline.runner.run`` without a memo uses its own."""
    return MeasureMemo()


class MeasureMemo:
    """Measurements of cached stages taken earlier by this process (a sweep's jobs share their baseline, often
    more): a cache hit with the same measure key (``Pipeline.measure_key``: the artifact's key and cache entry
    with its time, the reference, routes, settings, device, threads) reuses the row's numbers (``measure_reused``)
    instead of timing the same model with the same settings again. Speedups in it were paired when taken;
    nothing measured in another process is replayed. One per run unless the caller shares one (the CLI and the
    Python API: ``process_memo``)."""

    def __init__(self) -> None:
        self._taken: dict[tuple[Any, ...], dict[str, Any]] = {}

    def get(self, key: tuple[Any, ...]) -> dict[str, Any] | None:
        taken = self._taken.get(key)
        return copy.deepcopy(taken) if taken is not None else None

    def put(self, key: tuple[Any, ...], metrics: dict[str, Any]) -> None:
        self._taken[key] = copy.deepcopy(metrics)
