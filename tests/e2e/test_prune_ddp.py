"""The prune stage under ``torchrun --nproc_per_node=2`` (gloo, CPU): every rank prunes identically."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest


@pytest.mark.slow
def test_iterative_taylor_pruning_on_two_ranks(tmp_path: Path):
    """The prune stage trains between rounds (engine.fit under DDP), so it runs on every rank: the run must
    neither hang nor fail, and rank 0 alone writes the rows and the rounds table."""
    env = {**os.environ, "COMPRESSBENCH_DATA_DIR": str(tmp_path / "data"),
           "COMPRESSBENCH_CACHE_DIR": str(tmp_path / "cache")}
    args = ["+experiment=lenet5_prune", "model=resnet8", "dataset=synthetic", "dataset.in_channels=3",
            "train.epochs=1", "finetune.epochs=1", "prune.method=taylor", "prune.amount=0.5",
            "prune.schedule=iterative", "++prune.rounds=2", "++prune.retrain.epochs=1", "++prune.taylor_batches=2",
            "prune.scope=layer", "measure.latency=false", "runtime.progress=false", f"hydra.run.dir={tmp_path / 'run'}"]
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "compressbench", *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    rows = pd.read_csv(tmp_path / "run" / "results.csv").set_index("stage")
    assert set(rows["status"]) == {"ok"} and set(rows["world_size"]) == {2}
    assert rows.loc["prune", "channels_removed_fraction"] == pytest.approx(0.5, abs=0.02)
    assert rows.loc["finetune", "params"] == rows.loc["prune", "params"]
    assert len(pd.read_csv(tmp_path / "run" / "stages" / "01_prune" / "rounds.csv")) == 2
