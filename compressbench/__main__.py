"""``python -m compressbench [overrides]``: compose the config, run the chain, return the sweep objective."""
from __future__ import annotations

import os
import shlex
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, open_dict

import compressbench.stages  # noqa: F401  (stage/<kind> in Hydra's ConfigStore before it composes; imports no torch)
from compressbench.config import ConfigError, conf_dir
from compressbench.infra.hydra_callbacks import started_sweeps
from compressbench.infra.preflight import DataUnavailable, PreflightError
from compressbench.infra.registry import UnknownNameError
from compressbench.pipeline.objective import sweep_objective
from compressbench.pipeline.plan import validate


def budget_threads(cfg: DictConfig, hc: Any) -> None:
    """Parallel sweep jobs share the cores: give each ``cores // jobs`` threads (jobs × threads ≤ cores)
    unless the user set ``runtime.threads``. The number used is recorded in every row (``train_threads``)."""
    launcher = str(hc.launcher.get("_target_", ""))
    if hc.mode != RunMode.MULTIRUN or "joblib" not in launcher.lower() or cfg.runtime.threads is not None:
        return
    cores = os.cpu_count() or 1
    jobs = hc.launcher.get("n_jobs") or 1
    jobs = cores if jobs < 0 else jobs
    with open_dict(cfg):
        cfg.runtime.threads = max(1, cores // jobs)


def remove_if_untouched(run_dir: Path, log_name: str) -> None:
    """Delete the run dir Hydra made for a job that never started (only its ``.hydra/``, the job log and the
    status it ended with in it), and, in the default layout (``outputs/<name>/<time>``), the folders above it
    that this leaves empty."""
    if not run_dir.is_dir() or not {p.name for p in run_dir.iterdir()} <= {".hydra", log_name, "status.json"}:
        return
    shutil.rmtree(run_dir, ignore_errors=True)
    if run_dir.parent.parent.name == "outputs":
        for parent in (run_dir.parent, run_dir.parent.parent):
            try:
                parent.rmdir()  # only if empty
            except OSError:
                break


@hydra.main(version_base=None, config_path=str(conf_dir()), config_name="config")
def main(cfg: DictConfig) -> float | None:
    hc = HydraConfig.get()
    budget_threads(cfg, hc)
    try:
        plan = validate(cfg)  # every config error before the runner's imports (torch, techniques, plots)
        from compressbench.pipeline import runner

        rows = runner.run(cfg, Path(hc.runtime.output_dir), list(hc.overrides.task), plan=plan,
                          figures=hc.mode != RunMode.MULTIRUN,  # a sweep draws its jobs' figures once, at its end
                          memo=runner.process_memo())  # a sweep's jobs share their measurements
    except (ConfigError, UnknownNameError, DataUnavailable) as e:  # a mistake to fix before anything can run
        if hc.mode == RunMode.MULTIRUN:  # a sweep's bad job is listed in its summary; the sweep goes on
            from compressbench.pipeline import runner

            runner.write_status(Path(hc.runtime.output_dir), "failed", list(hc.overrides.task),
                                str(cfg.get("name", "default")), error=f"{type(e).__name__}: {e}")
            raise
        remove_if_untouched(Path(hc.runtime.output_dir), f"{hc.job.name}.log")
        print(f"compressbench: {e.args[0] if isinstance(e, KeyError) else e}", file=sys.stderr)
        sys.exit(2)
    except PreflightError as e:  # a full, read-only or foreign output place: one line that says what to change
        if hc.mode == RunMode.MULTIRUN:  # the job's status.json says it; the next jobs would hit the same wall
            raise
        print(f"compressbench: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt as e:  # Ctrl-C or SIGTERM (infra.signals): status.json says interrupted; one line
        remove_if_untouched(Path(hc.runtime.output_dir), f"{hc.job.name}.log")  # stopped before the run began
        print(f"compressbench: {stopped(e, cfg, Path(hc.runtime.output_dir))}", file=sys.stderr)
        sys.exit(128 + (signal.SIGTERM if getattr(e, "signal_name", "") == "SIGTERM" else signal.SIGINT))
    return sweep_objective(rows, plan.objective, plan.chain)


RERUN_FLAG = "--experimental-rerun"


def refuse_rerun(argv: list[str]) -> None:
    """Exit 2 on Hydra's ``--experimental-rerun FILE`` (or an abbreviation argparse would accept): it unpickles
    FILE, so whoever can write that file runs code. A run folder's ``.hydra/overrides.yaml`` reruns it."""
    for arg in argv:
        if arg == "--":
            break
        flag = arg.split("=", 1)[0]
        if len(flag) > 2 and RERUN_FLAG.startswith(flag):
            print(f"compressbench: {flag} is refused (it unpickles a file, which can run code); to rerun a job, "
                  f"pass the overrides in its .hydra/overrides.yaml again", file=sys.stderr)
            sys.exit(2)


def hydra_help() -> None:
    """Hydra's ``--hydra-help`` without the refused flag: Hydra composes that help without our config, so its
    template cannot be replaced; its flag list is filtered instead."""
    import contextlib
    import io

    text = io.StringIO()
    try:
        with contextlib.redirect_stdout(text):
            main()
    finally:  # Hydra ends its help with SystemExit(0)
        print("".join(line for line in text.getvalue().splitlines(keepends=True) if RERUN_FLAG not in line),
              end="")


def stopped(e: KeyboardInterrupt, cfg: DictConfig, run_dir: Path) -> str:
    """Where the run stopped and the command that goes on from there (the same one: finished stages come from
    the cache and a training resumes after its last finished epoch)."""
    args = sys.argv[1:]
    if not cfg.runtime.cache and not any(a.startswith("hydra.run.dir=") for a in args):
        args.append(f"hydra.run.dir={run_dir}")  # without the cache, the resume state is in this run dir
    said = str(e) if e.args else "stopped by SIGINT"
    return (f"{said}; run the same command again to go on from the last finished epoch: python -m compressbench "
            f"{shlex.join(args)}".rstrip())


def cli() -> None:
    """The ``compressbench`` console script. ``main`` returns the sweep objective (a float), which must not
    become the process's exit status."""
    refuse_rerun(sys.argv[1:])
    if "--hydra-help" in sys.argv[1:]:
        hydra_help()
        return
    try:
        main()
    except SystemExit as e:
        if e.code not in (0, None):  # Hydra refused the command line: a typo'd key gets a "did you mean"
            from compressbench.config.suggest import unknown_key_hints

            for hint in unknown_key_hints(sys.argv[1:]):
                print(hint, file=sys.stderr)
        raise
    finally:
        # A sweep's summary and figures are drawn once, here in the process that launched its jobs, when the
        # last one has ended — also when one failed (Hydra skips on_multirun_end then) or on Ctrl-C. Each job
        # wrote its own report; `python -m compressbench.report SWEEP_DIR` gives the view of a sweep under way.
        for sweep_dir in started_sweeps():
            from compressbench.pipeline.runner import report_best_effort

            report_best_effort(sweep_dir)


if __name__ == "__main__":
    cli()
