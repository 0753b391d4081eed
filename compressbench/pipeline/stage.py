"""One stage of a run: ``Pipeline`` builds the stage's read-only ``StageEnv``, takes its output from the cache or
runs it, writes what it returned (files, history, cache entry), measures the output and makes its results row.
The only code that writes cache entries and stage folders; a stage only returns.
"""
from __future__ import annotations

import copy
import json
import time
import traceback
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from torch import nn

from compressbench.config import BadValue, Plan, StageConfig, resolve_path, to_dict
from compressbench.data import DataBundle, load_dataset
from compressbench.engine import Diverged, resolve_device
from compressbench.engine.env import StageEnv, TensorMemo
from compressbench.engine.route import route_for
from compressbench.infra import distributed
from compressbench.infra.atomic import atomic_write_bytes, atomic_write_text, remove_stale_temps
from compressbench.infra.preflight import output_error_of, preflight
from compressbench.infra.safe_load import CheckpointError, load_weights_
from compressbench.measure import Baseline, measure
from compressbench.measure.accuracy import PER_IMAGE_KEY
from compressbench.models import build_model
from compressbench.pipeline.cache import Entry, StageCache
from compressbench.pipeline.keys import chain_keys
from compressbench.pipeline.measuring import MeasureMemo, timing_routes
from compressbench.pipeline.plan import EXPERIMENTS, validate
from compressbench.pipeline.process import seed_everything
from compressbench.results import write_csv
from compressbench.results.per_image import write_hits
from compressbench.runtimes import Arch, Deployable, Eager
from compressbench.runtimes.base import Unsupported
from compressbench.stages import STAGES, StageKind, StageResult
from compressbench.techniques import registered  # noqa: F401  (what a cache hit needs registered)


class Pipeline:
    """One run's chain: the stage cache, the keys, the reference, and every file and row the stages lead to."""

    def __init__(self, plan: Plan, run_dir: Path, data: DataBundle, memo: MeasureMemo | None = None) -> None:
        self.plan, self.run_dir, self.data = plan, run_dir, data
        self.measured = memo if memo is not None else MeasureMemo()
        self.dist = distributed.from_env()
        self.device = distributed.device_for(self.dist, resolve_device(plan.runtime.device))
        self.route = route_for(self.device, plan.runtime, plan.model)
        self.precision = self.route.precision
        cl = str(plan.runtime.channels_last).lower()
        self.channels_last = cl == "true" or (cl == "auto" and self.device.type == "cuda")
        self.cache = StageCache(resolve_path(plan.paths["cache_dir"]) if plan.runtime.cache else None)
        if self.cache.root is not None and self.cache.root.is_dir() and self.dist.is_main:
            remove_stale_temps(self.cache.root, every_s=3600)  # what killed writers left (a day old at least)
        self.memo = TensorMemo(self.cache.root)
        self.keys = chain_keys(plan, data.fingerprint, EXPERIMENTS)
        self.reference: Baseline | None = None

    def progress(self, iterable: Any, **kwargs: Any) -> Any:
        from compressbench.infra.progress import bar

        return bar(iterable, enabled=self.plan.runtime.progress and self.dist.is_main, **kwargs)

    def initial_model(self) -> Eager:
        """The model the chain starts from (its initial weights are part of the first key), checked."""
        seed_everything(int(self.keys[0][:8], 16))
        data = self.data
        arch = Arch(dict(self.plan.model), data.num_classes, data.in_channels, data.image_size)
        model = build_model(self.plan.model, data.num_classes, data.in_channels, data.image_size)
        if self.plan.init_from is not None:
            load_init_from(model, self.plan.init_from)
        model = model.to(self.device)
        check_layer_names(model, self.plan)
        check_stage_files(self.plan, data)
        if self.dist.is_main:
            preflight(self.run_dir, self.cache.root, sum(p.numel() for p in model.parameters()),
                      len(self.plan.chain))
        if self.channels_last:  # the loader hands channels-last batches on CUDA; matching weights keep cuDNN fast
            model = model.to(memory_format=torch.channels_last)
        return Eager(model, arch)

    def env(self, index: int, name: str, key: str, spec: StageKind | None, stage_dir: Path,
            resume_dir: Path | None) -> StageEnv:
        chain = self.plan.chain

        def lookup(stage: str) -> Deployable | None:
            return self.cache.lookup(self.keys[chain.index(stage) + 1], self.device)

        return StageEnv(name=name, index=index, key=key, seed=int(key[:8], 16) if key else self.plan.runtime.seed,
                        device=self.device, precision=self.precision, channels_last=self.channels_last,
                        route=self.route,
                        data=self.data, plan=self.plan, dist=self.dist,
                        collective=bool(spec and spec.distributed and self.dist.enabled), reference=self.reference,
                        resume_dir=resume_dir, history_dir=stage_dir if self.dist.is_main else None,
                        lookup=lookup, lookup_key=lambda k: self.cache.lookup(k, self.device),
                        experiments=EXPERIMENTS, memo=self.memo, progress_on=self.plan.runtime.progress)

    def run_stage(self, artifact: Deployable, index: int, name: str) -> tuple[Deployable, dict[str, Any]]:
        """Run (or load from the cache) one stage, write what it made, measure it, and build its row."""
        scfg = self.plan.stages[name]
        spec = STAGES.get(scfg.stage)
        key = self.keys[index + 1]
        stage_dir = self.run_dir / "stages" / f"{index:02d}_{name}"
        seed_everything(int(key[:8], 16))
        status, error, hit = "ok", None, False
        result = StageResult(artifact)
        start = time.perf_counter()
        try:
            result, hit = self.produce(artifact, index, name, key, spec, stage_dir)
        except Exception as e:
            if output_error_of(e) is not None:  # the disk, not the stage: run() reports it, no row is made
                raise
            # The row records it; the run raises after.
            status = "diverged" if isinstance(e, Diverged) else "unsupported" if isinstance(e, Unsupported) \
                else "failed"
            error = f"Unsupported: {e}" if status == "unsupported" else str(e) if status == "diverged" \
                else f"{type(e).__name__}: {e}"
            result.record.update(getattr(e, "record", {}))
            if status == "failed" and self.dist.is_main:
                atomic_write_text(stage_dir / "error.txt", traceback.format_exc())
        if self.dist.enabled:  # rank 0's outcome decides for all, so every rank stops (or goes on) together
            status, error = distributed.broadcast((status, error))
            if status == "ok" and not spec.distributed and not hit:
                result.artifact = self.hand_over(result.artifact, index)
            if not self.dist.is_main:
                return result.artifact, {"status": status, "error": error}
        wall = time.perf_counter() - start
        artifact = result.artifact
        metrics: dict[str, Any] = {}
        if status not in ("failed", "unsupported"):  # a diverged stage keeps its last good weights: measure those
            env = self.env(index, name, key, spec, stage_dir, None)
            routes = timing_routes(self.plan, index, name)
            memo_key = self.measure_key(key, routes)
            try:
                reused = self.measured.get(memo_key) if hit else None
                if reused is not None:
                    metrics = {**reused, "measure_reused": True}
                else:
                    metrics = measure(artifact, env.measure_inputs(routes))
                    if status == "ok":
                        self.measured.put(memo_key, metrics)
                hits = metrics.pop(PER_IMAGE_KEY, None)
                if hits is not None:  # per-image test hits: the report's paired intervals read them
                    write_hits(stage_dir, hits)
            except Exception as e:  # noqa: BLE001
                if output_error_of(e) is not None:
                    raise
                status, error = "failed", f"measurement failed: {type(e).__name__}: {e}"
                atomic_write_text(stage_dir / "error.txt", traceback.format_exc())
        if name == self.plan.reference and status == "ok" and isinstance(artifact, Eager):
            self.reference = Baseline(name, Eager(copy.deepcopy(artifact.module).eval(), artifact.arch), metrics)
            # The reference against itself: ratios are 1 by definition, not a measurement; reductions of it
            # from itself are not applicable (empty, as the README says).
            metrics.update(compression_ratio=1.0, reference_stage=name,
                           **({"speedup_vs_reference": 1.0, "throughput_speedup": 1.0, "speedup_vs_reference_iqr": 0.0}
                              if "latency_ms_p50" in metrics else {}))
        row = {"stage_index": index, "stage": name, "kind": scfg.stage, "method": getattr(scfg, "method", None),
               "status": status, **metrics, **result.record, "wall_s": wall, "cache_hit": hit,
               "stage_key": key[:16], "stage_params": json.dumps(to_dict(scfg), sort_keys=True), "error": error}
        return artifact, row

    def measure_key(self, key: str, routes: list[str]) -> tuple[Any, ...]:
        """What makes a measurement the same one: the artifact (its stage key: config, upstream, data; and the
        cache entry holding it, with its time — two caches may hold different weights under one key where
        training is not deterministic), the reference it is timed against (its key), the routes, the measure
        settings, the device, threads, precision and memory format."""
        ref = self.keys[self.plan.chain.index(self.reference.stage) + 1] if self.reference is not None else None
        entry = self.cache.path_of(key)
        stamp = entry.stat().st_mtime_ns if entry is not None and entry.exists() else None
        return (key, str(entry), stamp, ref, tuple(routes), repr(self.plan.measure), str(self.device),
                torch.get_num_threads(), self.plan.runtime.threads, self.precision.name, self.channels_last)

    def produce(self, artifact: Deployable, index: int, name: str, key: str, spec: StageKind,
                stage_dir: Path) -> tuple[StageResult, bool]:
        """The stage's result, from the cache or computed (then stored and written); and whether it was a hit.

        Under torchrun, rank 0 looks the entry up (holding its lock) and tells the others; a training stage then
        runs on every rank, anything else on rank 0 alone, whose artifact the others receive if a later stage
        trains it.
        """
        scfg = self.plan.stages[name]
        cache = self.cache if spec.cacheable else StageCache(None)
        dist = self.dist
        if not dist.is_main:
            hit = distributed.broadcast(None)
            if hit:
                cached = Entry(cache.path_of(key), key).load(self.device)
                assert cached is not None, "rank 0 found this cache entry complete"
                return StageResult(cached.artifact, cached.info, cached.history), True
            if spec.distributed:  # across ranks, resume only through the cache: the one place all can read
                return spec.fn(artifact, scfg, self.env(index, name, key, spec, stage_dir, cache.path_of(key))), False
            return StageResult(artifact), False  # rank 0 computes it; run_stage hands its artifact over
        with cache.hold(key) as entry:
            cached = entry.load(self.device)
            if dist.enabled:
                distributed.broadcast(cached is not None)
            if cached is not None:
                # What this run checked of the entry; its recorded verdicts are those of the run that made it.
                record = {**cached.info, "cache_verified": cached.checked}
                result = StageResult(self._placed(cached.artifact), record, cached.history, cached.files)
                self.write_stage_files(result, stage_dir)
                return result, True
            # An interrupted training stage resumes from the entry (or, without a cache, the stage folder).
            resume_dir = entry.path or (None if dist.enabled else stage_dir)
            result = spec.fn(artifact, scfg, self.env(index, name, key, spec, stage_dir, resume_dir))
            self.write_stage_files(result, stage_dir)
            entry.save(result.artifact, result.record, result.history, result.files, stage=scfg.stage)
            if resume_dir is not None:  # the stage is complete: its entry keeps the artifact, not these
                for path in resume_dir.glob("*resume.pt"):
                    path.unlink(missing_ok=True)
        return result, False

    def _placed(self, artifact: Deployable) -> Deployable:
        """A cached eager model in the run's memory format (channels-last on CUDA)."""
        if self.channels_last and isinstance(artifact, Eager):
            artifact.module = artifact.module.to(memory_format=torch.channels_last)
        return artifact

    @staticmethod
    def write_stage_files(result: StageResult, stage_dir: Path) -> None:
        for file, data in result.files.items():
            atomic_write_bytes(stage_dir / file, data)
        if result.history:
            write_csv(stage_dir / "history.csv", result.history)

    def hand_over(self, artifact: Deployable, index: int) -> Deployable:
        """Rank 0's artifact of a stage it ran alone, on every rank — when a later stage trains on all of them."""
        chain = self.plan.chain
        if not any(STAGES.get(self.plan.stages[n].stage).distributed for n in chain[index + 1:]):
            return artifact  # nothing on the other ranks uses it again
        if not isinstance(artifact, Eager):
            return artifact
        shipped = copy.deepcopy(artifact.module).cpu() if self.dist.is_main else None
        received = distributed.broadcast(shipped)
        return artifact if self.dist.is_main else Eager(received.to(self.device), artifact.arch, artifact.runtime)

    def run_analysis(self, artifact: Deployable, index: int, name: str) -> str | None:
        """Run a side study on a copy of the artifact; its files go to ``analysis/<name>/``. Returns an error.

        An analysis adds no results row and changes nothing down the chain; a failing one does not stop the
        chain, but the run ends as failed and says why.
        """
        acfg = self.plan.analyses[name]
        directory = self.run_dir / "analysis" / name
        env = self.env(index, name, "", None, directory, None)
        seed_everything(env.seed)
        try:
            result = STAGES.get(acfg.stage).fn(copy.deepcopy(artifact), acfg, env)
            self.write_stage_files(result, directory)
        except Exception as e:  # noqa: BLE001
            atomic_write_text(directory / "error.txt", traceback.format_exc())
            return f"analysis '{name}' failed: {type(e).__name__}: {e}"
        return None


def stage_env(cfg: DictConfig, stage: str, run_dir: str | Path) -> tuple[StageEnv, Eager]:
    """For calling a stage function yourself: the ``StageEnv`` stage ``stage`` of ``cfg`` would get (no earlier
    stage has run, so there is no reference) and the freshly built initial model.

    Example: ``env, model = stage_env(cfg, "prune", "out"); result = STAGES["prune"].fn(model, cfg_of_prune, env)``.
    """
    plan = validate(cfg)
    pipeline = Pipeline(plan, Path(run_dir), load_plan_data(plan))
    index = plan.chain.index(stage)
    spec = STAGES.get(plan.stages[stage].stage)
    directory = Path(run_dir) / "stages" / f"{index:02d}_{stage}"
    return pipeline.env(index, stage, pipeline.keys[index + 1], spec, directory, None), pipeline.initial_model()


def check_layer_names(model: nn.Module, plan: Plan) -> None:
    """Layer names in stage configs (``prune.ignore``, ...) checked on the built model before any training.

    Stops at a stage that changes the architecture (a distill student, a low-rank factorization): later names
    refer to another model.
    """
    for name in [*plan.chain, *plan.analyses]:
        scfg: StageConfig = plan.stages.get(name) or plan.analyses[name]
        kind = STAGES.get(scfg.stage)
        if kind.replaces_model:  # distill: its student is checked by the stage itself
            break
        kind.check_model(scfg, model, name)
        if kind.changes_layer_names:  # lowrank: later names refer to the factorized layers
            break


def load_init_from(model: nn.Module, path: str) -> None:
    """``init_from``'s weights into the built model; a file that does not fit it is a config error (one line)."""
    try:
        load_weights_(model, resolve_path(path))
    except CheckpointError as e:
        raise BadValue("init_from", path, str(e)) from None


def check_stage_files(plan: Plan, data: DataBundle) -> None:
    """The files stages read (a teacher's state_dict) against the models they must fit, before any training."""
    for name, scfg in plan.stages.items():
        STAGES.get(scfg.stage).check_files(scfg, name, plan, data.num_classes, data.in_channels, data.image_size)


def load_plan_data(plan: Plan) -> DataBundle:
    """The dataset the plan names, from ``paths.data_dir``; what is derived from it kept in ``paths.cache_dir``."""
    return load_dataset(plan.dataset, resolve_path(plan.paths["data_dir"]), resolve_path(plan.paths["cache_dir"]))
