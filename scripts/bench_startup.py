"""Benchmark: how long the command line takes to answer before any work — ``--help``, ``--cfg job``, a config
error — beside ``python -c "import torch"``, the floor of anything that imports torch.

Every command runs as a whole fresh process (interpreter start, imports, Hydra's composition, exit), from a
scratch directory, interleaved: each round runs every command once, in turn, so all of them see the same load.
A command that exits otherwise than expected (the config error must exit 2 naming its key) stops the benchmark:
a crash is not a start-up time. The subprocesses import the compressbench this script imports.

    python scripts/bench_startup.py [--rounds 7] [--out findings/benchmarks/bench_startup.csv]
"""
from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import compressbench
from compressbench.pipeline.provenance import git_sha, machine
from compressbench.results import write_csv

# name → (arguments after the interpreter, expected exit status, text the output must contain)
COMMANDS: dict[str, tuple[list[str], int, str]] = {
    "help": (["-m", "compressbench", "--help"], 0, "compressbench"),
    "cfg_job": (["-m", "compressbench", "--cfg", "job"], 0, "chain:"),
    "config_error": (["-m", "compressbench", "prune.amount=2"], 2, "prune.amount=2"),
    "import_torch": (["-c", "import torch"], 0, ""),
}


def timed(python: str, args: list[str], status: int, expect: str, cwd: Path, env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([python, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    seconds = time.perf_counter() - t0
    if proc.returncode != status or expect not in proc.stdout + proc.stderr:
        raise SystemExit(f"{' '.join(args)} exited {proc.returncode} (expected {status} and {expect!r} in its "
                         f"output):\n{(proc.stdout + proc.stderr)[-2000:]}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--python", default=sys.executable, help="the interpreter to time (default: this one)")
    parser.add_argument("--out", type=Path, default=Path("findings/benchmarks/bench_startup.csv"))
    args = parser.parse_args(argv)
    root = str(Path(compressbench.__file__).resolve().parents[1])  # the checkout (or site-packages) imported here
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])])}
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    with tempfile.TemporaryDirectory(prefix="compressbench-startup-") as scratch:
        for _ in range(args.rounds):  # interleaved: one of each per round
            for name, (command, status, expect) in COMMANDS.items():
                times[name].append(timed(args.python, command, status, expect, Path(scratch), env))
    floor = statistics.median(times["import_torch"])
    rows = [{"command": name, "args": " ".join(COMMANDS[name][0]), "rounds": args.rounds,
             "median_s": statistics.median(t), "min_s": min(t), "max_s": max(t),
             "median_over_import_torch": statistics.median(t) / floor, "machine": machine(),
             "torch_version": importlib.metadata.version("torch"), "python_version": platform.python_version(),
             "git_sha": git_sha(), "loadavg_1min_before": load}
            for name, t in times.items()]
    write_csv(args.out, rows)
    for row in rows:
        print(f"{row['command']:14s} median {row['median_s']:.2f} s  min {row['min_s']:.2f} s  "
              f"({row['median_over_import_torch']:.2f}x import torch)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
