"""The chain, stage after stage: the recipe a run follows (``walk``); each stage's own work is ``pipeline.stage``."""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from compressbench.config import Plan
from compressbench.infra import signals
from compressbench.infra.atomic import atomic_write_text
from compressbench.models import model_label
from compressbench.pipeline.measuring import MeasureMemo
from compressbench.pipeline.process import apply_runtime
from compressbench.pipeline.provenance import git_sha, machine, run_id_of
from compressbench.pipeline.stage import Pipeline, load_plan_data
from compressbench.report import print_table
from compressbench.results import write_results
from compressbench.runtimes import Deployable

log = logging.getLogger("compressbench.pipeline.runner")  # the name its messages have always carried


class RunFailed(RuntimeError):
    """A stage failed or diverged; its row (status, error) is in results.csv and the chain stopped there."""


def walk(cfg: DictConfig, plan: Plan, run_dir: Path, overrides: Any,
         memo: MeasureMemo | None = None) -> list[dict[str, Any]]:
    """The recipe: load the data, build the initial model, run each stage (and the analyses after it), one row
    each, written as it comes; the table on screen. Raises RunFailed after the row of a stage that failed."""
    apply_runtime(plan.runtime)
    data = load_plan_data(plan)
    atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    atomic_write_text(run_dir / "split.json", json.dumps(data.split_info, indent=1))
    pipeline = Pipeline(plan, run_dir, data, memo if memo is not None else MeasureMemo())
    identity = {"run_id": run_id_of(cfg), "experiment": plan.name, "model": model_label(plan.model),
                "dataset": plan.dataset.get("label") or plan.dataset["name"], "seed": plan.runtime.seed,
                "torch_version": torch.__version__,
                "git_sha": git_sha(), "machine": machine(), "overrides": " ".join(overrides),
                "precision": pipeline.precision.name, "train_route": pipeline.route.name,
                "train_threads": torch.get_num_threads(),
                "world_size": pipeline.dist.world_size,
                "num_classes": data.num_classes, "skipped_images": data.skipped_count,
                "image_size": data.image_size, "source_image_size": data.split_info.get("source_image_size"),
                "started": time.strftime("%Y-%m-%d %H:%M")}
    artifact: Deployable = pipeline.initial_model()
    rows: list[dict[str, Any]] = []
    failure = None
    for index, name in enumerate(pipeline.progress(plan.chain, desc="stages", unit="stage")):
        with signals.where(f"stage '{name}'"):
            artifact, row = pipeline.run_stage(artifact, index, name)
        if pipeline.dist.is_main:
            rows.append({**identity, **row})
            identity["model"] = row.get("model", identity["model"])  # after distill: the student goes on
            write_results(run_dir / "results.csv", rows)
        if row["status"] != "ok":
            not_run = plan.chain[index + 1:]
            message = (f"stage '{name}' {row['status']}: {row['error']}"
                       + (f"; not run: {', '.join(not_run)}" if not_run else ""))
            if row["status"] == "unsupported":  # a finding about this model, not a crash: the job succeeds
                log.warning("%s", message)
            else:
                failure = message
            break
        for analysis in (a for a, acfg in plan.analyses.items() if acfg.after == name and pipeline.dist.is_main):
            failure = pipeline.run_analysis(artifact, index, analysis) or failure
    if pipeline.dist.is_main:
        print_table(rows)
    if failure:
        raise RunFailed(f"{failure}. Rows so far are in {run_dir / 'results.csv'}")
    return rows
