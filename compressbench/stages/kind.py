"""``StageKind``: everything the pipeline asks of one stage kind, in one declaration next to its function.

A kind is its function, its options dataclass (values only: ``config/`` and the stage modules declare them),
its flags and its hooks — the checks it adds to validation, what its cache key reads beyond its options, the
model it hands on, the fp32 routes its output is timed against — and its place in a chain (what it needs from
the model reaching it and what it hands on; NVIDIA Model-Optimizer's ``ModeDescriptor`` declares ordering the
same way). The pipeline asks a kind through the methods below; the only option fields it reads by name are the
ones shared by convention across kinds: ``epochs``/``hint_epochs``/``warmup_epochs`` (capped by
``+debug=smoke``), ``teacher`` (given the smoke settings too), ``after`` (an analysis's stage) and ``method``
(the results column).

Hooks are plain functions of the options (``hook(opts, ...)``), given to ``register_stage`` as keywords; a kind
leaves out what it does not need and gets the default: no checks, nothing read beyond its options, the
architecture kept but its layer names not vouched for, no extra timing routes. Imports no torch.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from compressbench.config import StageConfig, to_dict

if TYPE_CHECKING:
    from compressbench.config import Experiments, Plan
    from compressbench.engine.env import StageEnv
    from compressbench.runtimes import Deployable

FP32 = "fp32"  # an fp32 module (``runtimes.Eager``)
DEPLOYED = "deployed"  # a model on a deployment runtime: int8 kernels, a cast, ONNX Runtime, OpenVINO
SAME = "same"  # hands on what it got, unchanged

StageFn = Callable[["Deployable", Any, "StageEnv"], "StageResult"]  # (artifact, opts, env)
OfOptions = Callable[[Any], Any]  # a value that depends on the options (``makes``, ``needs_fp32``)


@dataclass
class StageResult:
    """What a stage returns; the pipeline records, writes and caches it."""

    artifact: Deployable
    record: dict[str, Any] = field(default_factory=dict)  # extra results-row fields
    history: list[dict[str, Any]] = field(default_factory=list)  # per-epoch rows of the trainings it ran
    files: dict[str, bytes] = field(default_factory=dict)  # stage folder files: name → content


@dataclass(frozen=True)
class StageKind:
    """One stage kind. ``fn(artifact, opts, env) -> StageResult`` is the stage; ``config`` its options class."""

    name: str
    fn: StageFn
    config: type[StageConfig]
    cacheable: bool = True  # its output is stored in the stage cache
    distributed: bool = False  # runs on every rank under torchrun (it trains through engine.fit)
    # Chain order. ``needs_fp32``: the incoming model must be an fp32 module; ``makes``: FP32, DEPLOYED or SAME
    # (a value, or a function of the options); ``does``: what it does with the incoming model, for the error.
    # The defaults leave a kind unchecked (``tests/unit/test_plan_checks.py`` holds shipped kinds to declaring).
    needs_fp32: bool | OfOptions = False
    makes: str | OfOptions = SAME
    does: str = ""
    # Layer names in later stages' options refer to a changed model (lowrank renames layers; distill swaps the
    # model): the pre-flight layer-name check stops here.
    changes_layer_names: bool = False
    # The output is another architecture (distill's student): the incoming model's layer names are not checked
    # against its options (the stage checks its student itself).
    replaces_model: bool = False
    # A stage of this kind can be the baseline of ratios (``measure.reference`` defaults to the first one).
    reference_candidate: bool = False
    # Option fields that change only how the output is measured, never the model: left out of the cache key, so
    # e.g. installing another fp32 runtime does not recompute a quantized model.
    unkeyed: tuple[str, ...] = ()
    # Hooks (see the module docstring); None = the default.
    model_check: Callable[..., None] | None = None  # (opts, model, node): names in the options vs the built model
    plan_check: Callable[..., Any] | None = None  # (opts, name, plan, experiments) -> opts resolved, or None
    files_check: Callable[..., None] | None = None  # (opts, name, plan, num_classes, in_channels, image_size)
    salt: Callable[..., str | None] | None = None  # (opts, experiments, fingerprint): what the key reads beyond
    output: Callable[..., tuple[dict[str, Any], bool]] | None = None  # (opts, incoming, exact) -> (node, exact)
    routes: Callable[..., list[str]] | None = None  # (opts): fp32 runtimes the output is also timed against

    def key_fields(self, opts: StageConfig) -> dict[str, Any]:
        """``opts`` as its cache key sees it: its fields, without the ``unkeyed`` ones."""
        return {k: v for k, v in to_dict(opts).items() if k not in self.unkeyed}

    def check_model(self, opts: StageConfig, model: Any, node: str = "") -> None:
        """Check names ``opts`` gives against the built model (before any training); raise BadValue."""
        if self.model_check is not None:
            self.model_check(opts, model, node or self.name)

    def check_plan(self, opts: StageConfig, name: str, plan: Plan, experiments: Experiments) -> StageConfig:
        """Checks that need more than the node: the whole chain, other experiments, the model zoo or the installed
        runtimes (they may import torch; ``validate`` runs them after every torch-free check). Returns the
        options with what the check resolved (quantize's null ``fp32_routes`` → the installed runtimes); the
        given ``opts`` is not changed."""
        if self.plan_check is None:
            return opts
        resolved = self.plan_check(opts, name, plan, experiments)
        return opts if resolved is None else resolved

    def check_files(self, opts: StageConfig, name: str, plan: Plan, num_classes: int, in_channels: int,
                    image_size: int) -> None:
        """Files the stage reads (a teacher's state_dict), checked against the model they must fit once the data
        has told its classes, channels and image size: after the data loaded, before any training."""
        if self.files_check is not None:
            self.files_check(opts, name, plan, num_classes, in_channels, image_size)

    def cache_salt(self, opts: StageConfig, experiments: Experiments, fingerprint: str) -> str | None:
        """What the stage reads beyond its options (a file's content, another experiment's stage key on data with
        ``fingerprint``), for its cache key; None = nothing."""
        return None if self.salt is None else self.salt(opts, experiments, fingerprint)

    def output_model(self, opts: StageConfig, incoming: dict[str, Any], exact: bool) -> tuple[dict[str, Any], bool]:
        """The model config of the output given the ``incoming`` one, and whether its layer names are still known
        exactly (by default the architecture is kept, but a pruned or quantized model may rename layers)."""
        return (incoming, False) if self.output is None else self.output(opts, incoming, exact)

    def timing_routes(self, opts: StageConfig) -> list[str]:
        """fp32 runtimes (RUNTIMES names) the output is also timed against (``speedup_vs_best_fp32``)."""
        return [] if self.routes is None else self.routes(opts)

    def needs(self, opts: StageConfig) -> bool:
        """Whether the incoming model must be an fp32 module."""
        return self.needs_fp32(opts) if callable(self.needs_fp32) else self.needs_fp32

    def hands_on(self, opts: StageConfig, incoming: str) -> str:
        """What leaves the stage (FP32 or DEPLOYED) given what came in."""
        made = self.makes(opts) if callable(self.makes) else self.makes
        return incoming if made == SAME else made
