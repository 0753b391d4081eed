"""``Plan``: what ``pipeline.plan.validate`` checked and built, typed — what the pipeline walks — and the
``Experiments`` protocol through which a stage reads another experiment's plan and keys.

It lives in ``config`` (the ground floor) so that every layer can name it; ``validate`` itself, which needs the
model zoo, the loaders and the stage kinds, stays in ``pipeline``.
"""
from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from compressbench.config.schema import MeasureConfig, RuntimeConfig, StageConfig


@dataclass(frozen=True)
class Plan:
    """Everything ``validate`` checked, typed. Nothing downstream re-reads these from the composed config, and
    nothing changes them: a stage reads the plan it is handed (``StageEnv.plan``), it never writes it."""

    name: str
    chain: list[str]
    stages: dict[str, StageConfig]
    runtime: RuntimeConfig
    measure: MeasureConfig
    reference: str | None
    analyses: dict[str, StageConfig] = field(default_factory=dict)  # name → options with its ``after`` resolved
    # stage → the stage that put the model it hands on onto a deployment runtime; None: an fp32 model
    deployed_by: dict[str, str | None] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)  # the model node, resolved
    dataset: dict[str, Any] = field(default_factory=dict)  # the dataset node, resolved
    paths: dict[str, Any] = field(default_factory=dict)  # data_dir, cache_dir, ... as given (resolve_path them)
    init_from: str | None = None  # a state_dict file the initial model is loaded from
    # The model config entering each stage (index i) and leaving the chain (index len(chain)), and whether its
    # layer names are known exactly (StageKind.output_model)
    models: list[tuple[dict[str, Any], bool]] = field(default_factory=list)
    objective: Any = None  # what a sweeper optimizes (results.objective.ObjectiveConfig), checked
    logger: Any = None  # the experiment tracker's typed options (tracking: its ``parse``); None = no logger node

    def input_model(self, index: int) -> tuple[dict[str, Any], bool]:
        """The model config of what enters ``chain[index]`` (a copy) and whether its layer names are known
        exactly."""
        node, exact = self.models[index]
        return copy.deepcopy(node), exact


class Experiments(Protocol):
    """Other experiments as the pipeline composes and keys them, for stages that read another experiment's
    output (a distill teacher). The pipeline hands its implementation to the kinds' hooks and to ``StageEnv``."""

    def compose(self, name: str, overrides: Sequence[str]) -> Plan:
        """``+experiment=name`` with ``overrides``, composed as the CLI would and validated."""

    def stage_key(self, plan: Plan, stage: str, fingerprint: str) -> str:
        """The cache key of ``stage``'s output in that experiment, on data with ``fingerprint``."""
