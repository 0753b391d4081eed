"""``run(cfg)``: validate, load data, walk the chain (cache → stage → measure → row), report.

The pipeline owns every side effect: it builds each stage's read-only ``StageEnv``, calls the stage, writes what
the stage returned (its files, its history, its cache entry) and the results row. A stage only returns.
"""
from __future__ import annotations

import copy
import json
import logging
import os
import random
import shutil
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from compressbench.config import BadValue, ConfigError, RuntimeConfig, StageConfig, resolve_path, to_dict
from compressbench.data import DataBundle, check_dataset, load_dataset
from compressbench.engine import Diverged, resolve_device
from compressbench.engine.env import StageEnv, TensorMemo
from compressbench.engine.route import route_for
from compressbench.infra import distributed, signals
from compressbench.infra.atomic import atomic_write_bytes, atomic_write_text, remove_stale_temps
from compressbench.infra.preflight import (
    RUN_DIR_KEY,
    DataUnavailable,
    OutputError,
    Reserve,
    describe_output_error,
    ensure_writable,
    output_error_of,
    preflight,
)
from compressbench.infra.safe_load import CheckpointError, load_weights_
from compressbench.infra.version import __version__
from compressbench.measure import Baseline, measure
from compressbench.measure.accuracy import PER_IMAGE_KEY
from compressbench.models import build_model, model_label
from compressbench.pipeline.cache import Entry, StageCache
from compressbench.pipeline.keys import chain_keys
from compressbench.pipeline.plan import EXPERIMENTS, Plan, validate
from compressbench.pipeline.provenance import git_sha, machine, run_id_of
from compressbench.report import print_table, write_report
from compressbench.results import write_csv, write_results
from compressbench.results.per_image import write_hits
from compressbench.runtimes import Arch, Deployable, Eager
from compressbench.runtimes.base import Unsupported
from compressbench.stages import STAGES, StageKind, StageResult
from compressbench.techniques import registered  # noqa: F401  (what a cache hit needs registered)
from compressbench.tracking import track_run

log = logging.getLogger(__name__)


# Measurements of cached stages taken earlier in this process (a sweep's jobs share their baseline, often more):
# a cache hit with the same measure_key reuses the row's numbers (measure_reused) instead of timing the same model
# with the same settings again. Speedups in it were paired when taken; nothing measured elsewhere is replayed.
_MEASURED: dict[tuple[Any, ...], dict[str, Any]] = {}


class RunFailed(RuntimeError):
    """A stage failed or diverged; its row (status, error) is in results.csv and the chain stopped there."""


def run(cfg: DictConfig, run_dir: str | Path, overrides: list[str] | tuple[str, ...] = (),
        plan: Plan | None = None, figures: bool = True) -> list[dict[str, Any]]:
    """Run the chain in ``cfg``, writing everything under ``run_dir``; return the results rows.

    ``plan``: ``validate(cfg)`` when the caller has just made it (else it is made here). ``figures=False`` (a
    sweep's job: the sweep draws every job's points once, when it ends) writes the job's summary without plots.

    ``status.json`` in ``run_dir`` says how the job ended (ok / failed / interrupted, with the error), so a
    sweep summary lists jobs that failed before writing a single row.
    """
    plan = plan if plan is not None else validate(cfg)  # every config error here, before any folder or compute
    check_data(cfg)  # and the data's folders, before the run dir is written to
    if not distributed.from_env().is_main:
        # Under torchrun rank 0 owns the run dir; the other ranks write their scratch elsewhere and drop it.
        scratch = Path(tempfile.mkdtemp(prefix="compressbench-rank-"))
        try:
            return _run(cfg, plan, scratch, overrides)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    run_dir = Path(run_dir)
    fresh = untouched(run_dir)
    ensure_writable(run_dir, RUN_DIR_KEY)
    name = str(cfg.get("name", "default"))
    write_status(run_dir, "running", overrides, name)
    log.info("run dir: %s", run_dir.resolve())
    reserve = Reserve(run_dir)
    try:
        with signals.stop_requests():  # SIGINT and SIGTERM end the run here, as interrupted, with the files closed
            rows = _run(cfg, plan, run_dir, overrides)
    except BaseException as e:
        if isinstance(e, ConfigError) and fresh:
            # Found on the data or the built model (a weights file that does not fit it, a layer name), before any
            # stage ran: like any config error it leaves no run folder (the CLI removes Hydra's part of it).
            reserve.release()
            for file in BEFORE_STAGES:
                (run_dir / file).unlink(missing_ok=True)
            _try(run_dir.rmdir)  # when empty: what the caller passed is gone again
            raise
        status = "failed" if isinstance(e, Exception) else "interrupted"
        written = output_error_of(e)
        if written is not None:  # a full or read-only disk: not a bug, and the rows so far are intact
            reserve.release()
            message = describe_output_error(written, output_places(cfg, run_dir))
            ended = _try(write_status, run_dir, status, overrides, name, error=f"OutputError: {message}")
            _try(atomic_write_text, run_dir / "error.txt", traceback.format_exc())
            log.error("%s; run dir: %s%s", message, run_dir.resolve(),
                      "" if ended else " (status.json could not be updated either)")
            raise OutputError(message) from None
        write_status(run_dir, status, overrides, name, error=f"{type(e).__name__}: {e}")
        if isinstance(e, DataUnavailable):  # nothing ran: the command says why in one line (and drops the dir)
            raise
        if isinstance(e, RunFailed):  # its rows are written: the report shows how far it got
            report_best_effort(run_dir, figures)
        if isinstance(e, Exception):  # a failed run is tracked too (its status a tag); an interrupted one is not
            track_run(cfg, run_dir)
        log.info("%s; run dir: %s", status, run_dir.resolve())
        raise
    finally:
        reserve.release()
    # The status first: the report reads it, and must not list a finished run as still running.
    write_status(run_dir, "ok", overrides, name)
    report_best_effort(run_dir, figures)
    track_run(cfg, run_dir)
    log.info("done; results, summary.md and plots in %s", run_dir.resolve())
    return rows


def check_data(cfg: DictConfig) -> None:
    """Raise DataUnavailable (one line: where to put the files, how to get them) when the dataset's folder or
    files are missing and cannot be downloaded. Lists folders only; a failed download is caught when it runs."""
    try:
        check_dataset(cfg.dataset, resolve_path(cfg.paths.data_dir))
    except (ValueError, FileNotFoundError) as e:
        raise DataUnavailable(str(e)) from None


# What ``run`` writes into the run dir before the first stage.
BEFORE_STAGES = ("status.json", "config.yaml", "split.json")


def untouched(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds nothing of a run yet (missing, or only Hydra's ``.hydra/`` and job log)."""
    return not run_dir.is_dir() or all(p.name == ".hydra" or p.suffix == ".log" for p in run_dir.iterdir())


def output_places(cfg: DictConfig, run_dir: Path) -> list[tuple[Path, str]]:
    """Where a run writes, each with the key that moves it (for an error that says what to change)."""
    places = [(run_dir, RUN_DIR_KEY)]
    for key in ("cache_dir", "data_dir"):
        if cfg.paths.get(key):
            places.append((resolve_path(cfg.paths[key]), f"paths.{key}"))
    return places


def _try(write: Any, *args: Any, **kwargs: Any) -> bool:
    """Run a write whose failure must not hide the error being reported; say whether it worked."""
    try:
        write(*args, **kwargs)
        return True
    except OSError:
        return False


def write_status(run_dir: Path, status: str, overrides: Any, experiment: str, error: str | None = None) -> None:
    atomic_write_text(run_dir / "status.json", json.dumps(
        {"status": status, "experiment": experiment, "overrides": " ".join(overrides), "error": error,
         "time": time.strftime("%Y-%m-%dT%H:%M:%S")}, indent=1))


def _run(cfg: DictConfig, plan: Plan, run_dir: Path, overrides: Any) -> list[dict[str, Any]]:
    apply_runtime(plan.runtime)
    data = load_dataset(cfg.dataset, resolve_path(cfg.paths.data_dir), resolve_path(cfg.paths.cache_dir))
    atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    atomic_write_text(run_dir / "split.json", json.dumps(data.split_info, indent=1))
    pipeline = Pipeline(cfg, plan, run_dir, data)
    identity = {"run_id": run_id_of(cfg), "experiment": plan.name, "model": model_label(cfg.model),
                "dataset": cfg.dataset.get("label") or cfg.dataset.name, "seed": plan.runtime.seed,
                "torch_version": torch.__version__,
                "git_sha": git_sha(), "machine": machine(), "overrides": " ".join(overrides),
                "precision": pipeline.precision.name, "train_route": pipeline.route.name,
                "train_threads": torch.get_num_threads(),
                "world_size": pipeline.dist.world_size,
                "num_classes": data.num_classes, "skipped_images": data.skipped_count,
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


class Pipeline:
    """One run's chain: the stage cache, the keys, the reference, and every file and row the stages lead to."""

    def __init__(self, cfg: DictConfig, plan: Plan, run_dir: Path, data: DataBundle) -> None:
        self.cfg, self.plan, self.run_dir, self.data = cfg, plan, run_dir, data
        self.dist = distributed.from_env()
        self.device = distributed.device_for(self.dist, resolve_device(plan.runtime.device))
        self.route = route_for(self.device, plan.runtime, plan.model)
        self.precision = self.route.precision
        cl = str(plan.runtime.channels_last).lower()
        self.channels_last = cl == "true" or (cl == "auto" and self.device.type == "cuda")
        self.cache = StageCache(resolve_path(cfg.paths.cache_dir) if plan.runtime.cache else None)
        if self.cache.root is not None and self.cache.root.is_dir() and self.dist.is_main:
            remove_stale_temps(self.cache.root, every_s=3600)  # what killed writers left (a day old at least)
        self.memo = TensorMemo(self.cache.root)
        self.init_from = resolve_path(cfg.init_from) if cfg.get("init_from") else None
        self.keys = chain_keys(plan, data.fingerprint, EXPERIMENTS)
        self.reference: Baseline | None = None
        self.cfg = copy.deepcopy(cfg)
        OmegaConf.set_readonly(self.cfg, True)  # stages read the run config; none may change it

    def progress(self, iterable: Any, **kwargs: Any) -> Any:
        from compressbench.infra.progress import bar

        return bar(iterable, enabled=self.plan.runtime.progress and self.dist.is_main, **kwargs)

    def initial_model(self) -> Eager:
        """The model the chain starts from (its initial weights are part of the first key), checked."""
        seed_everything(int(self.keys[0][:8], 16))
        data = self.data
        arch = Arch(to_dict(self.cfg.model), data.num_classes, data.in_channels, data.image_size)
        model = build_model(self.cfg.model, data.num_classes, data.in_channels, data.image_size)
        if self.init_from is not None:
            load_init_from(model, self.cfg.init_from)
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
                        data=self.data, plan=self.plan, cfg=self.cfg, dist=self.dist,
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
            routes = self.routes_for(index, name, scfg)
            memo_key = self.measure_key(key, routes)
            try:
                if hit and memo_key in _MEASURED:
                    metrics = {**copy.deepcopy(_MEASURED[memo_key]), "measure_reused": True}
                else:
                    metrics = measure(artifact, env.measure_inputs(routes))
                    if status == "ok":
                        _MEASURED[memo_key] = copy.deepcopy(metrics)
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

    def routes_for(self, index: int, name: str, scfg: StageConfig) -> list[str]:
        """The fp32 runtimes a stage's output is timed against: what it asks for (quantize), and for the chain's
        last stage every ``measure.fp32_routes`` — so each branch's final model has a ``speedup_vs_best_fp32``."""
        routes = list(STAGES.get(scfg.stage).timing_routes(scfg))
        if index == len(self.plan.chain) - 1 and name != self.plan.reference:
            routes += [r for r in self.plan.measure.fp32_routes or [] if r not in routes]
        return routes

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
    data = load_dataset(cfg.dataset, resolve_path(cfg.paths.data_dir), resolve_path(cfg.paths.cache_dir))
    pipeline = Pipeline(cfg, plan, Path(run_dir), data)
    index = plan.chain.index(stage)
    spec = STAGES.get(plan.stages[stage].stage)
    directory = Path(run_dir) / "stages" / f"{index:02d}_{stage}"
    return pipeline.env(index, stage, pipeline.keys[index + 1], spec, directory, None), pipeline.initial_model()


def report_best_effort(directory: Path, figures: bool = True) -> None:
    """Refresh a run's or sweep's report; a plotting problem is reported, never turned into a failed run (every
    measurement is already in results.csv, and ``python -m compressbench.report`` can redo it)."""
    try:
        write_report(directory, figures=figures)
    except Exception as e:  # noqa: BLE001
        log.warning("the report in %s could not be refreshed (%s: %s); results.csv is complete — run "
                    "python -m compressbench.report %s", directory, type(e).__name__, e, directory)


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


def apply_runtime(runtime: RuntimeConfig) -> None:
    if runtime.threads is not None:
        torch.set_num_threads(runtime.threads)
    if runtime.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    elif torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


__all__ = ["Pipeline", "RunFailed", "run", "stage_env", "__version__"]
