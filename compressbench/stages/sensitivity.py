"""The ``sensitivity`` stage kind: per-layer accuracy vs pruning amount, written to CSV and drawn.

Mostly used as an analysis (``+analysis=sensitivity`` runs it on a copy of the model after the reference
stage, or after ``sensitivity.after``; files go to ``<run dir>/analysis/sensitivity/``). In a chain it changes
nothing: the model goes on as it came.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from compressbench.config import StageConfig, check
from compressbench.results import csv_bytes
from compressbench.stages import StageResult, register_stage
from compressbench.stages.kind import SAME
from compressbench.techniques.pruning.choices import SENSITIVITY_METHODS as METHODS
from compressbench.techniques.pruning.criteria import scannable

if TYPE_CHECKING:
    from torch import nn

    from compressbench.engine.env import StageEnv
    from compressbench.runtimes import Deployable


@dataclass
class SensitivityConfig(StageConfig):
    stage: str = "sensitivity"
    after: str | None = None  # as an analysis: the chain stage whose model is scanned (null = the reference)
    # Pruning criteria to scan with: any that needs no gradients (criteria.scannable: magnitude, random, l1_filter
    # and those you register); the default is Han et al.'s and Li et al.'s.
    methods: list[str] = field(default_factory=lambda: list(METHODS))
    amounts: list[float] = field(default_factory=lambda: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
    split: str = "val"  # where accuracy is measured: val (choosing per-layer amounts on test would leak) | test
    ignore: list[str] = field(default_factory=list)  # layers not scanned
    max_batches: int | None = None  # evaluate on this many batches of the split (null = all of it)

    def __post_init__(self) -> None:
        check(len(self.methods) > 0 and all(m in scannable() for m in self.methods), "methods", self.methods,
              f"a non-empty list of {', '.join(scannable())} (pruning criteria that need no gradients)")
        check(len(self.amounts) > 0 and all(0 <= a < 1 for a in self.amounts), "amounts", self.amounts,
              "a non-empty list of fractions 0 <= amount < 1")
        check(self.split in ("val", "test"), "split", self.split, "val or test")
        check(self.max_batches is None or self.max_batches >= 1, "max_batches", self.max_batches, "null or >= 1")


def check_layers(cfg: SensitivityConfig, model: nn.Module, node: str = "sensitivity") -> None:
    from compressbench.techniques.pruning.layers import check_selectors

    check_selectors(model, f"{node}.ignore", cfg.ignore)


@register_stage("sensitivity", SensitivityConfig, needs_fp32=True, makes=SAME, does="prunes copies of fp32 layers",
                model_check=check_layers)
def sensitivity(artifact: Deployable, cfg: SensitivityConfig, env: StageEnv) -> StageResult:
    """Scan every layer at every amount; hand back ``sensitivity.csv`` and the figures. The model is unchanged."""
    import torch

    from compressbench.engine import evaluate
    from compressbench.runtimes import as_module
    from compressbench.runtimes.eager import module_device
    from compressbench.techniques.pruning.layers import classifier_name
    from compressbench.techniques.pruning.sensitivity import scan

    model = as_module(artifact, env.name)
    check_layers(cfg, model, env.name)
    device = module_device(model)
    example = env.example_batch(1, device)
    loader = env.eval_loader(cfg.split, device=device)

    def accuracy(m: nn.Module) -> dict[str, float]:
        batches = itertools.islice(loader, cfg.max_batches) if cfg.max_batches else loader
        return evaluate(m, batches, topk=(1,))

    def progress(items):
        items = list(items)
        return env.progress(items, desc=f"{env.name} layers", unit="layer", leave=False)

    generator = torch.Generator().manual_seed(env.seed)  # a random criterion's scores (its control)
    rows = scan(model, accuracy, cfg.methods, cfg.amounts, cfg.ignore, example, classifier_name(model, example),
                progress, generator)
    from compressbench.models import model_label
    from compressbench.techniques.pruning.sensitivity_plots import draw  # matplotlib only when drawing

    dataset = env.plan.dataset.get("label") or env.plan.dataset["name"]
    title = f"{model_label(env.plan.model)} on {dataset}, {cfg.split} split"
    files = {"sensitivity.csv": csv_bytes(rows), **draw(rows, title)}
    return StageResult(artifact, {"sensitivity_points": len(rows)}, files=files)
