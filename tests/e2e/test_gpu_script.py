"""scripts/gpu_findings.sh composes every command it would run on a GPU machine (DRY_RUN: trains nothing).

The script itself runs only where a GPU is lent; this catches a renamed option or experiment before then.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_findings_script_composes_every_step(tmp_path: Path):
    env = {**os.environ, "DRY_RUN": "1", "WORK": str(tmp_path), "PYTHON": sys.executable, "EPOCHS": "12"}
    out = subprocess.run(["bash", str(ROOT / "scripts/gpu_findings.sh")], env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    composed = sorted(p.stem for p in tmp_path.glob("*.yaml"))
    assert composed == ["resnet56_l1filter_a", "resnet56_l1filter_b", "resnet56_to_resnet20_kd"], out.stdout
    kd = (tmp_path / "resnet56_to_resnet20_kd.yaml").read_text()
    assert "name: cifar10_jpeg" in kd and "device: cuda" in kd and re.search(r"- 6(\.0)?\n", kd)  # milestones from EPOCHS
