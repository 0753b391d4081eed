"""The default job exactly as a user first runs it: ``python -m compressbench``, offline, on the digits."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd


def test_default_run_offline_on_digits(tmp_path: Path):
    env = {**os.environ, "COMPRESSBENCH_DATA_DIR": str(tmp_path / "data"),
           "COMPRESSBENCH_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, "-m", "compressbench", f"hydra.run.dir={tmp_path / 'run'}"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = pd.read_csv(tmp_path / "run" / "results.csv")
    assert list(rows["stage"]) == ["train", "prune", "finetune", "quantize"] and set(rows["status"]) == {"ok"}
    assert set(rows["dataset"]) == {"digits"} and set(rows["model"]) == {"lenet5"}
    assert rows["test_acc"].iloc[0] >= 95.0  # the trained model
    assert rows["test_acc"].iloc[2] >= 95.0  # after pruning 80% of the weights and finetuning
    assert rows["test_acc"].iloc[3] >= rows["test_acc"].iloc[2] - 1.0  # int8 costs at most a point
    assert rows["runtime"].iloc[3] == "fx-int8" and rows["size_bytes"].iloc[3] < rows["size_bytes"].iloc[2] / 2
    assert rows["sparsity"].iloc[2] > 0.75 and rows["encoded_bytes"].iloc[1] < rows["size_bytes"].iloc[1] / 2
    assert "finetune" in proc.stdout  # the results table
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").iterdir())  # nothing downloaded
