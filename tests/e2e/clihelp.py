"""Helpers for tests that run the command line in a subprocess."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

FAST = ["chain=[train,finetune]", "dataset=synthetic", "train.epochs=1", "finetune.epochs=1", "train.batch_size=16", "finetune.batch_size=16", "measure.iters=2", "measure.rounds=2", "measure.min_time_s=0", "measure.fp32_routes=[eager,onnxruntime]", "runtime.amp=off",
        "measure.warmup=1", "runtime.progress=false"]


def cli(tmp_path: Path, *args: str, module: str = "compressbench", timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "COMPRESSBENCH_DATA_DIR": str(tmp_path / "data"),
           "COMPRESSBENCH_CACHE_DIR": str(tmp_path / "cache"), "HYDRA_FULL_ERROR": "0"}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=timeout)
