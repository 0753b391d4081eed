"""The ``compressbench`` console script: the same app as ``python -m compressbench``, with Hydra's completion."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(sys.executable).parent / "compressbench"


def console(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    if not SCRIPT.is_file():
        pytest.fail(f"{SCRIPT} is missing: pyproject.toml's [project.scripts] was not installed")
    return subprocess.run([str(SCRIPT), *args], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def test_help_names_the_app_and_lists_every_choice(tmp_path: Path):
    proc = console(tmp_path, "--help")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "powered by Hydra" not in proc.stdout and proc.stdout.startswith("compressbench:")
    for listed in ("resnet56", "cifar10_jpeg", "quantize", "compare_all"):  # model, dataset, stage, experiment
        assert listed in proc.stdout, listed


def test_shell_completion_completes_options(tmp_path: Path):
    line = "compressbench model=res"
    proc = console(tmp_path, "-sc", "query=bash", env={"COMP_LINE": line, "COMP_POINT": str(len(line))})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert {"model=resnet20", "model=resnet56"} <= set(proc.stdout.split())
