"""Benchmark: what a 4-point sweep of the default run costs against one run of it (issue target: <= 1.3x).

Each round, from an empty stage cache each, runs once ``python -m compressbench`` and once
``python -m compressbench -m prune.amount=0.3,0.5,0.7,0.9`` (whole processes, the order alternating between
rounds, so both see the same load); the sweep trains its baseline once (the stage cache) and prunes four times.
The ratio is taken within each round (paired) and summarised over rounds. Where the time goes is read back from
the runs' own files: the stages' ``wall_s`` (work incl. cache lookups), measurement and the rest (imports, data,
report, exit) as what is left of the wall time.

    python scripts/bench_sweep.py [--rounds 7] [--out findings/benchmarks/bench_sweep.csv] [--set KEY=VALUE ...]
"""
from __future__ import annotations

import argparse
import importlib.metadata
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

import compressbench
from compressbench.pipeline.provenance import git_sha, machine
from compressbench.results import write_csv

SWEEP = "prune.amount=0.3,0.5,0.7,0.9"


def timed(args: list[str], cwd: Path, env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "compressbench", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=1800)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"compressbench {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return seconds


def stage_seconds(directory: Path) -> tuple[int, float]:
    """(jobs, summed stage wall_s) of the results.csv files under ``directory``."""
    files = sorted(directory.rglob("results.csv"))
    files = [f for f in files if f.parent != directory or len(files) == 1]  # a sweep's own summary is not a job
    return len(files), float(sum(pd.read_csv(f)["wall_s"].sum() for f in files))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path("findings/benchmarks/bench_sweep.csv"))
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="an override for both commands (repeat it), e.g. --set +debug=smoke")
    args = parser.parse_args(argv)
    root = str(Path(compressbench.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])]),
           "TQDM_DISABLE": "1"}
    rows = []
    with tempfile.TemporaryDirectory(prefix="compressbench-sweep-") as scratch:
        work = Path(scratch)
        for r in range(args.rounds):
            order = ["one_run", "sweep"] if r % 2 == 0 else ["sweep", "one_run"]
            walls: dict[str, float] = {}
            for kind in order:
                out = work / f"{kind}_{r}"
                cache = f"paths.cache_dir={out / 'cache'}"
                command = ([*args.overrides, cache, f"hydra.run.dir={out / 'run'}"] if kind == "one_run" else
                           ["-m", *args.overrides, SWEEP, cache, f"hydra.sweep.dir={out / 'run'}"])
                walls[kind] = timed(command, work, env)
                jobs, work_s = stage_seconds(out / "run")
                rows.append({"round": r, "command": kind, "jobs": jobs, "wall_s": walls[kind],
                             "stage_wall_s": work_s, "other_s": walls[kind] - work_s})
            rows.append({"round": r, "command": "ratio", "wall_s": walls["sweep"] / walls["one_run"]})
    ratios = [row["wall_s"] for row in rows if row["command"] == "ratio"]
    meta = {"rounds": args.rounds, "overrides": " ".join(args.overrides), "sweep": SWEEP, "machine": machine(),
            "torch_version": importlib.metadata.version("torch"), "git_sha": git_sha()}
    rows.append({"round": "all", "command": "ratio_median", "wall_s": statistics.median(ratios),
                 "ratio_min": min(ratios), "ratio_max": max(ratios)})
    write_csv(args.out, [{**row, **meta} for row in rows])
    for row in rows:
        extra = f"  stages {row['stage_wall_s']:.1f} s, rest {row['other_s']:.1f} s" if "other_s" in row else ""
        print(f"round {row['round']!s:4s} {row['command']:13s} {row['wall_s']:.2f}{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
