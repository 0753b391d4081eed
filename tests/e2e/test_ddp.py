"""``torchrun --nproc_per_node=2 -m compressbench``: data-parallel training on CPU with gloo."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

# No timing: what is tested is the training across ranks and the rows (fp32-route builds would cost ~10 s a run).
COMMON = ["train.epochs=15", "finetune.epochs=2", "measure.latency=false", "runtime.progress=false"]


def launch(tmp_path: Path, prefix: list[str], out: str, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COMPRESSBENCH_DATA_DIR": str(tmp_path / "data"),
           "COMPRESSBENCH_CACHE_DIR": str(tmp_path / f"cache_{out}")}
    return subprocess.run([*prefix, "-m", "compressbench", *COMMON, *extra, f"hydra.run.dir={tmp_path / out}"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)


def test_two_ranks_give_one_row_per_stage_and_the_accuracy_of_one(tmp_path: Path):
    # batch_size is per rank: half of the default 64 keeps the global batch, hence the number of steps, equal.
    ddp = launch(tmp_path, [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"],
                 "ddp", "train.batch_size=32", "finetune.batch_size=32")
    assert ddp.returncode == 0, ddp.stderr[-4000:]
    single = launch(tmp_path, [sys.executable], "single")
    assert single.returncode == 0, single.stderr[-3000:]
    two, one = pd.read_csv(tmp_path / "ddp/results.csv"), pd.read_csv(tmp_path / "single/results.csv")
    # The default chain: train on both ranks, prune, finetune on both, quantize on rank 0; rows from rank 0 only.
    assert list(two["stage"]) == ["train", "prune", "finetune", "quantize"] and set(two["status"]) == {"ok"}
    assert two["sparsity"].iloc[2] > 0.75  # the pruned zeros survived data-parallel finetuning
    assert abs(two["test_acc"].iloc[-1] - one["test_acc"].iloc[-1]) < 5.0
    history = pd.read_csv(tmp_path / "ddp/stages/00_train/history.csv")
    assert len(history) == len(pd.read_csv(tmp_path / "single/stages/00_train/history.csv"))
    assert set(two["world_size"]) == {2} and set(one["world_size"]) == {1}
    assert len(list((tmp_path / "cache_ddp").rglob("DONE"))) == 4  # one entry per stage, written by rank 0
