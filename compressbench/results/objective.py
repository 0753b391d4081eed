"""A job's objective over its results rows: which columns to optimize (``test_acc:max``), under which
constraints (``size_bytes<=40000``), read from which stage's row (default: the chain's last stage).

One definition for the two readers: the sweep objective a Hydra sweeper optimizes (``pipeline/objective.py``)
and the Pareto set of a sweep's summary (``report/pareto_set.py``), so Optuna and summary.md always agree.
``size_bytes`` means the *stored* size, as everywhere in the report: the verified ``encoded_bytes`` where a stage
made one that is smaller than its artifact (``stored_size``).
"""
from __future__ import annotations

import difflib
import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from compressbench.config import BadValue, check
from compressbench.results.table import RENAMED

DIRECTIONS = {"max": "maximize", "min": "minimize"}  # ours → the names Optuna's (and Hydra's) direction takes
OPERATORS: dict[str, Callable[[float, float], bool]] = {"<=": operator.le, ">=": operator.ge, "<": operator.lt,
                                                        ">": operator.gt}
# Numeric columns of results.csv (README "Results columns") a metric or a constraint may name.
METRICS: tuple[str, ...] = tuple((
    "test_acc val_acc test_top5 params nonzero_params sparsity dense_bytes size_bytes deployable_bytes gzip_bytes "
    "encoded_bytes "
    "compression_ratio macs effective_macs latency_ms_p50 latency_ms_p95 throughput_ips speedup_vs_reference "
    "speedup_vs_reference_iqr throughput_speedup macs_reduction_pct params_reduction_pct test_loss wall_s achieved_sparsity "
    "params_removed_fraction channels_removed_fraction macs_reduction encoded_dense_bytes onnx_fp32_bytes "
    "program_bytes weight_bits teacher_agreement encoded_ratio weights_kept_pct ratio_p ratio_pq ratio_pqh "
    "distinct_values_max shared_values_total train_images_per_s speedup_vs_best_fp32"
).split())
COMMON = ("test_acc", "size_bytes", "speedup_vs_best_fp32", "latency_ms_p50", "compression_ratio", "encoded_bytes",
          "throughput_ips", "macs")
ROUTE_SPEEDUP = re.compile(r"speedup_vs_[a-z0-9]+_fp32(_iqr)?")  # one per fp32 runtime (RUNTIMES names)
ACCURACIES = ("test_acc", "val_acc", "test_top5")  # percent, never fractions
# What a sweeper is told for an infeasible or failed job: the worst value of each direction. Finite on purpose:
# optuna 2.10's multi-objective TPE turns ±inf into NaN weights and crashes the study; 1e18 is beyond any
# real metric (bytes, MACs, percent) and still safe to square in a hypervolume.
WORST = 1e18
KEYS = ("metrics", "constraints", "stage")
_CONSTRAINT = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|<|>)\s*([-+0-9.eE]+)\s*")


@dataclass(frozen=True)
class Metric:
    column: str
    direction: str  # max | min

    @property
    def optuna(self) -> str:
        return DIRECTIONS[self.direction]

    @property
    def worst(self) -> float:
        return -WORST if self.direction == "max" else WORST

    def __str__(self) -> str:
        return f"{self.column}:{self.direction}"


@dataclass(frozen=True)
class Constraint:
    column: str
    op: str
    bound: float

    def holds(self, value: float) -> bool:
        return OPERATORS[self.op](value, self.bound)

    def __str__(self) -> str:
        return f"{self.column}{self.op}{self.bound:g}"


def _known(column: str, key: str, spec: str) -> str:
    column = RENAMED.get(column, column)  # a config written before a column was renamed keeps working
    if column in METRICS or ROUTE_SPEEDUP.fullmatch(column):
        return column
    # A word of a column name first, the common metrics before the rest: 'acc' means test_acc (difflib alone
    # would say macs), 'latency' latency_ms_p50.
    candidates = list(dict.fromkeys(COMMON + METRICS))
    close = [c for c in candidates if column and column in c.split("_")] or difflib.get_close_matches(
        column, candidates, n=1, cutoff=0.5)
    hint = f"did you mean {close[0]}? " if close else ""
    raise BadValue(key, spec, f"unknown metric '{column}'; {hint}a numeric results column such as "
                              f"{', '.join(COMMON[:4])} (README: Results columns)")


def parse_metric(spec: Any, key: str = "metrics") -> Metric:
    """``test_acc:max`` → Metric; BadValue naming the metric or the direction otherwise."""
    column, sep, direction = str(spec).strip().partition(":")
    check(bool(sep), key, spec, "column:max or column:min, e.g. test_acc:max or size_bytes:min")
    column = _known(column.strip(), key, str(spec))
    check(direction.strip() in DIRECTIONS, key, spec, f"bad direction '{direction.strip()}' for {column}: max or min")
    return Metric(column, direction.strip())


def parse_constraint(spec: Any, key: str = "constraints") -> Constraint:
    """``size_bytes<=40000`` → Constraint; BadValue naming what is wrong otherwise."""
    m = _CONSTRAINT.fullmatch(str(spec))
    check(m is not None, key, spec, "column<=number, >=, < or >, e.g. size_bytes<=40000 or test_acc>=90 "
                                    "(quote it on the command line: 'objective.constraints=[\"size_bytes<=40000\"]')")
    assert m is not None
    try:
        bound = float(m.group(3))
    except ValueError:
        raise BadValue(key, spec, f"the bound '{m.group(3)}' is not a number") from None
    check(math.isfinite(bound), key, spec, "a finite bound")
    column = _known(m.group(1), key, str(spec))
    check(not (column in ACCURACIES and m.group(2) in (">=", ">") and 0 < bound <= 1), key, spec,
          f"accuracies are percent: did you mean {column}{m.group(2)}{bound * 100:g}?")
    return Constraint(column, m.group(2), bound)


@dataclass
class ObjectiveConfig:
    """The ``objective:`` node of the config (conf/config.yaml), parsed and checked in ``__post_init__``."""

    metrics: list[str] = field(default_factory=lambda: ["test_acc:max"])
    constraints: list[str] = field(default_factory=list)
    stage: str | None = None  # which stage's row; None = the chain's last stage
    parsed: tuple[Metric, ...] = field(init=False, repr=False)
    limits: tuple[Constraint, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        check(isinstance(self.metrics, (list, tuple)) and len(self.metrics) > 0, "metrics", self.metrics,
              "a non-empty list such as [test_acc:max] or [test_acc:max, size_bytes:min]")
        check(isinstance(self.constraints, (list, tuple)), "constraints", self.constraints,
              'a list such as ["size_bytes<=40000"] ([] for none)')
        self.parsed = tuple(parse_metric(m) for m in self.metrics)
        columns = [m.column for m in self.parsed]
        check(len(set(columns)) == len(columns), "metrics", self.metrics, "each column once")
        self.limits = tuple(parse_constraint(c) for c in self.constraints)
        check(self.stage is None or isinstance(self.stage, str), "stage", self.stage,
              "null (the chain's last stage) or a stage name of the chain")

    @classmethod
    def from_node(cls, node: Any) -> ObjectiveConfig:
        """From a config node (DictConfig or dict; None = the default); BadValue keyed ``objective.*``."""
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(node, (DictConfig, ListConfig)):
            node = OmegaConf.to_container(node, resolve=True)
        node = {} if node is None else node
        if not isinstance(node, Mapping):
            raise BadValue("objective", node, f"a node with {', '.join(KEYS)}")
        unknown = [k for k in node if k not in KEYS]
        if unknown:
            close = difflib.get_close_matches(str(unknown[0]), KEYS, n=1)
            raise BadValue(f"objective.{unknown[0]}", node[unknown[0]],
                           (f"did you mean objective.{close[0]}? " if close else "") + f"objective has {', '.join(KEYS)}")
        try:
            return cls(**node)
        except BadValue as e:
            raise e.under("objective") from None

    @property
    def directions(self) -> list[str]:
        """Optuna's names of the directions, one per metric (``hydra.sweeper.direction``)."""
        return [m.optuna for m in self.parsed]

    @property
    def worst(self) -> tuple[float, ...]:
        return tuple(m.worst for m in self.parsed)

    def describe(self) -> str:
        text = ", ".join(str(m) for m in self.parsed)
        if self.limits:
            text += " subject to " + ", ".join(str(c) for c in self.limits)
        return text + (f" (stage {self.stage})" if self.stage else "")


def number(value: Any) -> float | None:
    """A cell as a finite float (CSV text, numpy, bool-free), or None when empty / not a number."""
    if value is None or isinstance(value, bool):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def stored_size(row: Mapping[str, Any]) -> tuple[float | None, str | None]:
    """(bytes, column) of what a row's model takes to store: ``size_bytes`` (the artifact that runs) or, where
    smaller, the verified ``encoded_bytes`` (decoded before running). The report's "size" of a row."""
    sizes = [(v, c) for c in ("size_bytes", "encoded_bytes") if (v := number(row.get(c))) is not None]
    return min(sizes, key=lambda s: s[0]) if sizes else (None, None)


def metric_value(row: Mapping[str, Any], column: str) -> float | None:
    return stored_size(row)[0] if column == "size_bytes" else number(row.get(column))


@dataclass(frozen=True)
class Evaluation:
    """One job scored: its values (None unless feasible), and why not when it is not."""

    values: tuple[float, ...] | None
    reason: str = ""  # empty when feasible
    row: Mapping[str, Any] | None = None

    @property
    def feasible(self) -> bool:
        return self.values is not None


def pick_row(rows: Sequence[Mapping[str, Any]], chain: Sequence[str], stage: str | None) -> Mapping[str, Any] | None:
    """The row the objective reads: ``stage``'s (its last one), or the chain's last stage's (by position)."""
    if stage is not None:
        return next((r for r in reversed(rows) if str(r.get("stage")) == stage), None)
    last = len(chain) - 1
    return next((r for r in reversed(rows) if number(r.get("stage_index")) == last), None)


def evaluate(rows: Sequence[Mapping[str, Any]], objective: ObjectiveConfig, chain: Sequence[str],
             job_status: str = "ok") -> Evaluation:
    """Score a job: infeasible when it failed, when its stage has no ok row, a metric is missing, or a
    constraint does not hold."""
    if job_status != "ok":
        return Evaluation(None, f"job {job_status}")
    if not rows:
        return Evaluation(None, "no results rows")
    stage = objective.stage or (chain[-1] if chain else "?")
    row = pick_row(rows, chain, objective.stage)
    if row is None:
        return Evaluation(None, f"stage {stage} did not run")
    if str(row.get("status")) != "ok":
        return Evaluation(None, f"stage {stage} {row.get('status')}", row)
    values = []
    for m in objective.parsed:
        value = metric_value(row, m.column)
        if value is None:
            return Evaluation(None, f"no {m.column} on stage {stage}", row)
        values.append(value)
    for c in objective.limits:
        value = metric_value(row, c.column)
        if value is None or not c.holds(value):
            return Evaluation(None, f"violates {c}", row)
    return Evaluation(tuple(values), "", row)


def check_stage(objective: ObjectiveConfig, chain: Sequence[str]) -> None:
    """``objective.stage`` must name one of the chain's stages."""
    if objective.stage is not None and objective.stage not in chain:
        close = difflib.get_close_matches(objective.stage, [str(c) for c in chain], n=1)
        raise BadValue("objective.stage", objective.stage, (f"did you mean {close[0]}? " if close else "")
                       + f"null (the chain's last stage) or one of the chain's stages: {', '.join(map(str, chain))}")


__all__ = ["DIRECTIONS", "METRICS", "WORST", "Constraint", "Evaluation", "Metric", "ObjectiveConfig",
           "check_stage", "evaluate", "metric_value", "number", "parse_constraint", "parse_metric", "pick_row",
           "stored_size"]
