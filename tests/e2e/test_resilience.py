"""Fault drills (issue 9): each test fails without the guard it names."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from compressbench.engine import KeepSparsity
from compressbench.infra.preflight import PreflightError
from compressbench.infra.safe_load import UnsafeCheckpoint
from compressbench.pipeline.runner import run
from compressbench.report import collect, write_report
from compressbench.results import read_csv

TRAIN5 = ("train.epochs=5", "finetune.epochs=1")


def interrupt_in_epoch(monkeypatch, epoch_index: int) -> None:
    """Make the train loop die (like Ctrl-C) at the end of epoch ``epoch_index`` before its checkpoint."""
    def boom(self, model, epoch):
        if epoch == epoch_index:
            raise KeyboardInterrupt

    monkeypatch.setattr(KeepSparsity, "on_epoch_end", boom)


def test_resume_after_interruption_matches_an_uninterrupted_run(make_cfg, tmp_path: Path, monkeypatch):
    reference = run(make_cfg(*TRAIN5, f"paths.cache_dir={tmp_path / 'other_cache'}"), tmp_path / "ref")
    with monkeypatch.context() as m:
        interrupt_in_epoch(m, 2)
        with pytest.raises(KeyboardInterrupt):
            run(make_cfg(*TRAIN5), tmp_path / "a")
    assert "interrupted" in (tmp_path / "a/status.json").read_text()
    rows = run(make_cfg(*TRAIN5), tmp_path / "b")  # the same command again
    assert rows[0]["resumed_from_epoch"] == 2
    assert [r["test_acc"] for r in rows] == [r["test_acc"] for r in reference]
    resumed = [h["train_loss"] for h in read_csv(tmp_path / "b/stages/00_train/history.csv")]
    straight = [h["train_loss"] for h in read_csv(tmp_path / "ref/stages/00_train/history.csv")]
    assert resumed == straight and len(resumed) == 5
    assert not list((tmp_path / "cache").rglob("resume.pt"))  # cleaned up once the stage is cached


def test_changed_config_refuses_to_resume_and_says_why(make_cfg, tmp_path: Path, monkeypatch, caplog):
    out = tmp_path / "run"  # a fixed run dir (hydra.run.dir), no cache: the run dir holds the resume state
    with monkeypatch.context() as m:
        interrupt_in_epoch(m, 2)
        with pytest.raises(KeyboardInterrupt):
            run(make_cfg(*TRAIN5, "runtime.cache=false"), out)
    assert (out / "stages/00_train/resume.pt").is_file()
    rows = run(make_cfg(*TRAIN5, "runtime.cache=false", "train.lr=0.02"), out)
    out = caplog.text
    assert "not resuming train" in out and "different config" in out
    assert rows[0].get("resumed_from_epoch") is None


def test_pickle_that_would_run_code_is_refused(make_cfg, tmp_path: Path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    evil = tmp_path / "weights.pt"
    torch.save({"conv.weight": Evil()}, evil)
    with pytest.raises(UnsafeCheckpoint, match="refusing to load"):
        run(make_cfg(f"init_from={evil}"), tmp_path / "run")
    assert not marker.exists()


def test_init_from_a_state_dict_starts_from_those_weights(make_cfg, tmp_path: Path):
    trained = run(make_cfg("train.epochs=4", "finetune.epochs=0"), tmp_path / "a")
    weights = tmp_path / "trained.pt"
    torch.save(torch.load(tmp_path / "a/stages/00_train/best.pt"), weights)
    rows = run(make_cfg("train.epochs=0", "finetune.epochs=0", f"init_from={weights}"), tmp_path / "b")
    assert rows[0]["test_acc"] == trained[0]["test_acc"]


def test_full_disk_fails_before_training(make_cfg, tmp_path: Path, monkeypatch):
    import compressbench.infra.preflight as pf

    monkeypatch.setattr(pf.shutil, "disk_usage", lambda path: _Usage(10_000))
    with pytest.raises(PreflightError, match="not enough free space"):
        run(make_cfg(), tmp_path / "run")
    assert not (tmp_path / "run" / "stages").exists()


class _Usage:
    def __init__(self, free: int) -> None:
        self.free = free


def test_unwritable_output_dir_is_a_clear_error(make_cfg, tmp_path: Path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    with pytest.raises(PreflightError, match="cannot write to"):
        run(make_cfg(), blocker / "run")
    with pytest.raises(PreflightError, match="paths.cache_dir"):
        run(make_cfg(f"paths.cache_dir={blocker / 'cache'}"), tmp_path / "run")


def test_temp_files_are_never_read_as_results(tmp_path: Path):
    (tmp_path / "0").mkdir()
    (tmp_path / "0" / ".tmp-results.csv.abc").write_text("garbage,from,a,dead,writer\n1,2")
    rows, jobs, problems = collect(tmp_path)
    assert rows.empty and not problems


WORKER = """
import sys
import compressbench
compressbench.run(overrides=[
    "chain=[train,finetune]", "dataset=synthetic", "train.epochs=1", "finetune.epochs=0", "measure.latency=false",
    "runtime.progress=false", f"runtime.seed={sys.argv[1]}", f"paths.cache_dir={sys.argv[2]}/cache",
], output_dir=f"{sys.argv[2]}/sweep/{sys.argv[1]}")
from compressbench.report import write_report
write_report(f"{sys.argv[2]}/sweep")
"""


def test_concurrent_writers_lose_no_rows_and_aggregation_is_idempotent(tmp_path: Path):
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(seed), str(tmp_path)], cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for seed in range(4)]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], errors
    sweep = tmp_path / "sweep"
    first = (sweep / "summary.csv").read_text()
    summary = pd.read_csv(sweep / "summary.csv")
    assert len(summary) == 8 and sorted(summary["seed"].unique()) == [0, 1, 2, 3]
    write_report(sweep)
    write_report(sweep)
    assert (sweep / "summary.csv").read_text() == first


def test_kill_mid_sweep_then_rerun_completes_every_job_once(tmp_path: Path):
    sweep = tmp_path / "sweep"
    args = [sys.executable, "-m", "compressbench", "-m", "chain=[train,finetune]", "dataset=synthetic",
            "dataset.n_train=3000",
            "train.epochs=12", "finetune.epochs=1", "train.batch_size=32", "measure.latency=false",
            "runtime.progress=false", "finetune.lr=0.01,0.001", f"hydra.sweep.dir={sweep}",
            f"paths.cache_dir={tmp_path / 'cache'}", f"paths.data_dir={tmp_path / 'data'}"]
    proc = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    history = sweep / "0" / "stages" / "00_train" / "history.csv"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if history.is_file() and len(history.read_text().splitlines()) >= 3:  # header + 2 epochs
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the sweep finished before it could be killed; make the stage longer"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    rerun = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    summary = pd.read_csv(sweep / "summary.csv")
    assert len(summary) == 4 and not summary.duplicated(["run_id", "stage_index"]).any()
    assert set(summary["status"]) == {"ok"}
    train = summary[summary["stage"] == "train"].sort_values("run_dir")
    assert train["resumed_from_epoch"].iloc[0] >= 2  # the killed stage went on from its last epoch
    assert list(train["cache_hit"]) == [False, True]  # and the second job reused it
