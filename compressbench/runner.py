"""``run(cfg)``: validate, load data, walk the chain (cache → stage → measure → row), report."""
from __future__ import annotations

import copy
import hashlib
import json
import os
import random
import shutil
import subprocess
import tempfile
import time
import traceback
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from compressbench import __version__, distributed
from compressbench.atomic import atomic_write_text
from compressbench.cache import Entry, StageCache, file_sha256, stage_key
from compressbench.checkpoints import load_weights_
from compressbench.config import Plan, RuntimeConfig, resolve_path, to_dict, validate
from compressbench.context import Reference, RunContext, resolve_device
from compressbench.data import load_dataset
from compressbench.engine import Diverged, Unsupported
from compressbench.measure import measure
from compressbench.models import build_model
from compressbench.preflight import ensure_writable, preflight
from compressbench.report import print_table, write_report
from compressbench.results import write_csv, write_results
from compressbench.stages import STAGES, StageSpec


class RunFailed(RuntimeError):
    """A stage failed or diverged; its row (status, error) is in results.csv and the chain stopped there."""


def run(cfg: DictConfig, run_dir: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Run the chain in ``cfg``, writing everything under ``run_dir``; return the results rows.

    ``status.json`` in ``run_dir`` says how the job ended (ok / failed / interrupted, with the error), so a
    sweep summary lists jobs that failed before writing a single row.
    """
    if not distributed.from_env().is_main:
        # Under torchrun rank 0 owns the run dir; the other ranks write their scratch elsewhere and drop it.
        scratch = Path(tempfile.mkdtemp(prefix="compressbench-rank-"))
        try:
            return _run(cfg, scratch, overrides)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    run_dir = Path(run_dir)
    ensure_writable(run_dir, "hydra.run.dir (or the sweep dir)")
    name = str(cfg.get("name", "default"))
    write_status(run_dir, "running", overrides, name)
    try:
        rows = _run(cfg, run_dir, overrides)
    except BaseException as e:
        status = "failed" if isinstance(e, Exception) else "interrupted"
        write_status(run_dir, status, overrides, name, error=f"{type(e).__name__}: {e}")
        raise
    write_status(run_dir, "ok", overrides, name)
    return rows


def write_status(run_dir: Path, status: str, overrides: Any, experiment: str, error: str | None = None) -> None:
    atomic_write_text(run_dir / "status.json", json.dumps(
        {"status": status, "experiment": experiment, "overrides": " ".join(overrides), "error": error,
         "time": time.strftime("%Y-%m-%dT%H:%M:%S")}, indent=1))


def _run(cfg: DictConfig, run_dir: Path, overrides: Any) -> list[dict[str, Any]]:
    plan = validate(cfg)  # every config error surfaces here, before any data or compute
    apply_runtime(plan.runtime)
    data = load_dataset(cfg.dataset, resolve_path(cfg.paths.data_dir))
    atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    atomic_write_text(run_dir / "split.json", json.dumps(data.split_info, indent=1))
    ctx = RunContext(cfg, plan, run_dir, data)
    cache = StageCache(resolve_path(cfg.paths.cache_dir) if plan.runtime.cache else None)
    init_from = resolve_path(cfg.init_from) if cfg.get("init_from") else None
    keys = chain_keys(cfg, plan, init_from)
    identity = {"run_id": run_id_of(cfg), "experiment": plan.name, "model": cfg.model.name,
                "dataset": cfg.dataset.name, "seed": plan.runtime.seed, "torch_version": torch.__version__,
                "git_sha": git_sha(), "machine": machine(), "overrides": " ".join(overrides),
                "precision": ctx.precision.name, "train_threads": torch.get_num_threads(),
                "world_size": ctx.dist.world_size,
                "num_classes": data.num_classes, "started": time.strftime("%Y-%m-%d %H:%M")}

    seed_everything(int(keys[0][:8], 16))  # the initial weights are part of the cached prefix: fix them
    model = build_model(cfg.model, data.num_classes, data.in_channels, data.image_size)
    if init_from is not None:
        load_weights_(model, init_from)
    model = model.to(ctx.device)
    check_layer_names(model, plan)
    if ctx.dist.is_main:
        preflight(run_dir, cache.root, sum(p.numel() for p in model.parameters()), len(plan.chain))
    if ctx.channels_last:  # the loader hands channels-last batches on CUDA; matching weights keep cuDNN fast
        model = model.to(memory_format=torch.channels_last)
    rows: list[dict[str, Any]] = []
    failure = None
    for index, name in enumerate(ctx.progress(plan.chain, desc="stages", unit="stage")):
        model, row = run_stage(model, index, name, keys[index + 1], ctx, cache)
        if ctx.dist.is_main:
            rows.append({**identity, **row})
            identity["model"] = row.get("model", identity["model"])  # after distill: the student goes on
            write_results(run_dir / "results.csv", rows)
        if row["status"] != "ok":
            not_run = plan.chain[index + 1:]
            message = (f"stage '{name}' {row['status']}: {row['error']}"
                       + (f"; not run: {', '.join(not_run)}" if not_run else ""))
            if row["status"] == "unsupported":  # a finding about this model, not a crash: the job succeeds
                print(f"[compressbench] {message}", flush=True)
            else:
                failure = message
            break
        for analysis in (a for a, acfg in plan.analyses.items() if acfg.after == name and ctx.dist.is_main):
            failure = run_analysis(model, index, analysis, ctx) or failure
    if ctx.dist.is_main:
        print_table(rows)
        report_best_effort(run_dir)
    if failure:
        raise RunFailed(f"{failure}. Rows so far are in {run_dir / 'results.csv'}")
    return rows


def report_best_effort(directory: Path) -> None:
    """Refresh a run's or sweep's report; a plotting problem is reported, never turned into a failed run (every
    measurement is already in results.csv, and ``python -m compressbench.report`` can redo it)."""
    try:
        write_report(directory)
    except Exception as e:  # noqa: BLE001
        print(f"[compressbench] the report in {directory} could not be refreshed ({type(e).__name__}: {e}); "
              f"results.csv is complete — run python -m compressbench.report {directory}", flush=True)


def run_analysis(model: nn.Module, index: int, name: str, ctx: RunContext) -> str | None:
    """Run a side study on a copy of ``model``; its files go to ``analysis/<name>/``. Returns an error or None.

    An analysis adds no results row and changes nothing down the chain; a failing one does not stop the
    chain, but the run ends as failed and says why.
    """
    acfg = ctx.plan.analyses[name]
    ctx.begin_stage(index, name, seed=ctx.stage_seed, directory=ctx.run_dir / "analysis" / name)
    seed_everything(ctx.stage_seed)
    try:
        STAGES.get(acfg.stage).fn(copy.deepcopy(model), acfg, ctx)
    except Exception as e:  # noqa: BLE001
        atomic_write_text(ctx.stage_dir / "error.txt", traceback.format_exc())
        return f"analysis '{name}' failed: {type(e).__name__}: {e}"
    return None


def run_stage(model: nn.Module, index: int, name: str, key: str, ctx: RunContext,
              cache: StageCache) -> tuple[nn.Module, dict[str, Any]]:
    """Run (or load from the cache) one stage, measure its model, and build its results row."""
    scfg = ctx.plan.stages[name]
    spec = STAGES.get(scfg.stage)
    ctx.begin_stage(index, name, seed=int(key[:8], 16), key=key, collective=spec.distributed)
    seed_everything(ctx.stage_seed)
    status, error, hit = "ok", None, False
    start = time.perf_counter()
    try:
        model, hit = produce(model, spec, scfg, key, ctx, cache if spec.cacheable else StageCache(None))
    except Diverged as e:
        status, error = "diverged", str(e)
    except Unsupported as e:
        status, error = "unsupported", f"Unsupported: {e}"
    except Exception as e:  # noqa: BLE001 — the row records it and the run raises RunFailed afterwards
        status, error = "failed", f"{type(e).__name__}: {e}"
        atomic_write_text(ctx.stage_dir / "error.txt", traceback.format_exc())
    if ctx.dist.enabled:  # rank 0's outcome decides for all, so every rank stops (or goes on) together
        status, error = distributed.broadcast((status, error))
        if status == "ok" and not spec.distributed and not hit:
            model = hand_over(model, ctx)
        if not ctx.dist.is_main:
            return model, {"status": status, "error": error}
    wall = time.perf_counter() - start

    metrics: dict[str, Any] = {}
    if status not in ("failed", "unsupported"):  # a diverged stage keeps its last good weights: measure those
        try:
            metrics = measure(model, ctx)
        except Exception as e:  # noqa: BLE001
            status, error = "failed", f"measurement failed: {type(e).__name__}: {e}"
            atomic_write_text(ctx.stage_dir / "error.txt", traceback.format_exc())
    if name == ctx.plan.reference and status == "ok":
        ctx.reference = Reference(name, copy.deepcopy(model).eval(), metrics)
        # The reference against itself: ratios are 1 by definition, not a measurement.
        metrics.update(compression_ratio=1.0, reference_stage=name,
                       **({"speedup": 1.0, "throughput_speedup": 1.0, "speedup_iqr": 0.0}
                          if "latency_ms_p50" in metrics else {}))
    row = {"stage_index": index, "stage": name, "kind": scfg.stage, "method": getattr(scfg, "method", None),
           "status": status, **metrics, **ctx.info, "wall_s": wall, "cache_hit": hit, "stage_key": key[:16],
           "stage_params": json.dumps(to_dict(scfg), sort_keys=True), "error": error}
    return model, row


def check_layer_names(model: nn.Module, plan: Plan) -> None:
    """Layer names in stage configs (``prune.ignore``, ...) checked on the built model before any training.

    Stops at a stage that changes the architecture (a distill student, a low-rank factorization): later names
    refer to another model.
    """
    for name in [*plan.chain, *plan.analyses]:
        scfg = plan.stages.get(name) or plan.analyses[name]
        if scfg.stage == "distill":
            break
        check = getattr(scfg, "check_model", None)
        if callable(check):
            check(model, name)
        if getattr(scfg, "changes_layer_names", False):  # lowrank: later names refer to the factorized layers
            break


def produce(model: nn.Module, spec: StageSpec, scfg: Any, key: str, ctx: RunContext,
            cache: StageCache) -> tuple[nn.Module, bool]:
    """The stage's output model, from the cache or computed (then stored); and whether it was a cache hit.

    Under torchrun, rank 0 looks the entry up (holding its lock) and tells the others; a training stage then
    runs on every rank, anything else on rank 0 alone, whose model the others receive if a later stage
    trains it.
    """
    dist = ctx.dist
    if not dist.is_main:
        hit = distributed.broadcast(None)
        if hit:
            cached = Entry(cache.path_of(key), key).load(ctx.device)
            assert cached is not None, "rank 0 found this cache entry complete"
            return cached.model, True
        if spec.distributed:
            ctx.resume_file = cache.path_of(key) / "resume.pt" if cache.root is not None else None
            return spec.fn(model, scfg, ctx), False
        return model, False  # rank 0 computes it; run_stage hands its model over once it succeeded
    with cache.hold(key) as entry:
        cached = entry.load(ctx.device)
        if dist.enabled:
            distributed.broadcast(cached is not None)
        if cached is not None:
            ctx.info.update(cached.info)
            ctx.history = cached.history
            cached.restore_files(ctx.stage_dir)
            if cached.history:
                write_csv(ctx.stage_dir / "history.csv", cached.history)
            return cached.model, True
        # An interrupted training stage resumes from here on the next run (engine.fit); across ranks only
        # through the cache, the one place every rank can read.
        ctx.resume_file = (entry.path or (None if dist.enabled else ctx.stage_dir))
        ctx.resume_file = ctx.resume_file / "resume.pt" if ctx.resume_file is not None else None
        model = spec.fn(model, scfg, ctx)
        entry.save(model, ctx.info, ctx.history, files=ctx.stage_dir)
        if ctx.resume_file is not None:
            ctx.resume_file.unlink(missing_ok=True)
    return model, False


def hand_over(model: nn.Module, ctx: RunContext) -> nn.Module:
    """Rank 0's model of a stage it ran alone, on every rank — when a later stage trains on all of them."""
    chain = ctx.plan.chain
    if not any(STAGES.get(ctx.plan.stages[n].stage).distributed for n in chain[ctx.stage_index + 1:]):
        return model  # nothing on the other ranks uses it again
    received = distributed.broadcast(copy.deepcopy(model).cpu() if ctx.dist.is_main else None)
    return model if ctx.dist.is_main else received.to(ctx.device)


def chain_keys(cfg: DictConfig, plan: Plan, init_from: Path | None = None) -> list[str]:
    """Cache keys: [initial model, after stage 1, ...]. They depend on configs (and the bytes of an
    ``init_from`` file) only, so are known up front."""
    dataset = {k: v for k, v in to_dict(cfg.dataset).items() if k not in ("download",)}
    init = file_sha256(init_from) if init_from is not None else None
    keys = [stage_key("", model=to_dict(cfg.model), dataset=dataset, seed=plan.runtime.seed, init_from=init,
                      training=training_environment(plan))]
    for name in plan.chain:
        scfg = plan.stages[name]
        # A stage that reads a file (a teacher checkpoint) salts its key with the file's content.
        salt = scfg.cache_salt() if callable(getattr(scfg, "cache_salt", None)) else None
        keys.append(stage_key(keys[-1], stage=to_dict(scfg), **({"salt": salt} if salt else {})))
    return keys


def training_environment(plan: Plan) -> dict[str, Any]:
    """What, besides configs, changes a trained model: precision, ranks (the global batch), determinism and the
    torch/torchvision versions (whole models are pickled). Part of every cache key."""
    import torchvision

    from compressbench.engine import Precision

    device = resolve_device(plan.runtime.device)
    return {"precision": Precision.for_device(device, plan.runtime.amp).name,
            "world_size": int(os.environ.get("WORLD_SIZE", "1")), "deterministic": plan.runtime.deterministic,
            "torch": torch.__version__, "torchvision": torchvision.__version__}


def run_id_of(cfg: DictConfig) -> str:
    """One job's identity: its whole resolved config but paths and progress bars. A rerun of the same command
    has the same id (the aggregator keeps its newest rows); a sweep over any option gives distinct ids."""
    node = to_dict(cfg)
    node.pop("paths", None)
    node.get("runtime", {}).pop("progress", None)
    return hashlib.sha256(json.dumps(node, sort_keys=True, default=str).encode()).hexdigest()[:12]


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


@cache
def git_sha() -> str:
    """Short commit of the compressbench checkout (``+dirty`` with local changes); empty when installed."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return ""
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    return sha + ("+dirty" if sha and dirty else "")


@cache
def machine() -> str:
    """CPU model and core count, e.g. 'Intel Xeon ... (2 cores)'; the GPU is named in the device column."""
    name = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        import platform

        name = platform.processor() or platform.machine()
    return f"{name} ({os.cpu_count()} cores)"


__all__ = ["run", "RunFailed", "__version__"]
