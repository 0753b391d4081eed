"""Fault drills (issue 9): each test fails without the guard it names."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from compressbench.config import ConfigError
from compressbench.engine import KeepSparsity
from compressbench.infra.preflight import PreflightError
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
    with pytest.raises(ConfigError, match="init_from=.* is not allowed: refusing to load"):  # in validation
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


@pytest.mark.slow  # ~17 s: the default suite stays under 10 minutes
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
            "dataset.n_train=1500",
            "train.epochs=8", "finetune.epochs=1", "train.batch_size=32", "measure.latency=false",
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


def _fill_disk_at(monkeypatch, marker: str) -> list[str]:
    """From the first write whose path contains ``marker`` on, every write of the pipeline fails with ENOSPC
    (as on a disk that filled up), until the run's reserve file is released. Returns the refused paths."""
    import errno

    import compressbench.infra.atomic as atomic
    import compressbench.infra.preflight as pf

    real_write, real_release = atomic.atomic_write, pf.Reserve.release
    state = {"full": False, "refused": []}

    def write(path, fn):
        state["full"] = state["full"] or marker in str(path)
        if state["full"]:
            state["refused"].append(str(path))
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_write(path, fn)

    def release(self):
        state["full"] = False  # the reserve's bytes are free again: status.json and error.txt fit
        real_release(self)

    monkeypatch.setattr(atomic, "atomic_write", write)
    monkeypatch.setattr(pf.Reserve, "release", release)
    return state["refused"]


def test_a_disk_that_fills_mid_run_ends_failed_with_one_line_and_keeps_the_rows(make_cfg, tmp_path: Path,
                                                                                   monkeypatch):
    from compressbench.infra.preflight import OutputError

    refused = _fill_disk_at(monkeypatch, "01_finetune")
    run_dir = tmp_path / "run"
    with pytest.raises(OutputError) as info:
        run(make_cfg(), run_dir)
    message = str(info.value)
    assert "\n" not in message and "No space left on device" in message
    assert "hydra.run.dir" in message and "01_finetune" in message  # what could not be written, and the key
    assert refused, "the fault was never injected"
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "failed" and status["error"].startswith("OutputError: ")
    assert "No space left on device" in (run_dir / "error.txt").read_text()
    rows = read_csv(run_dir / "results.csv")
    assert [r["stage"] for r in rows] == ["train"]  # the row written before the disk filled is intact
    assert not (run_dir / ".compressbench-reserve").exists()


def test_a_full_cache_disk_names_paths_cache_dir(make_cfg, tmp_path: Path, monkeypatch):
    from compressbench.infra.preflight import OutputError

    _fill_disk_at(monkeypatch, str(tmp_path / "cache"))
    with pytest.raises(OutputError, match="paths.cache_dir"):
        run(make_cfg(), tmp_path / "run")
    assert json.loads((tmp_path / "run" / "status.json").read_text())["status"] == "failed"


def test_the_reserve_file_is_gone_after_a_good_run(make_cfg, tmp_path: Path):
    run(make_cfg("chain=[train]", "train.epochs=1"), tmp_path / "run")
    assert not (tmp_path / "run" / ".compressbench-reserve").exists()


def test_a_run_dir_that_cannot_be_made_is_one_line_before_hydra_writes(tmp_path: Path):
    from clihelp import FAST, cli

    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    for args in (["hydra.run.dir=" + str(blocker / "run")], ["hydra.sweep.dir=" + str(blocker / "sweep"),
                                                             "train.epochs=1,2"]):
        proc = cli(tmp_path, *(["-m"] if "train.epochs=1,2" in args else []), *FAST, *args)
        assert proc.returncode == 1, proc.stderr
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
        key = "hydra.sweep.dir" if "train.epochs=1,2" in args else "hydra.run.dir"
        assert lines[0].startswith("compressbench: ") and key in lines[0] and "is a file" in lines[0]


def test_a_read_only_file_system_is_detected_before_any_write(tmp_path: Path, monkeypatch):
    import compressbench.infra.preflight as pf

    real = os.statvfs

    class ReadOnly:
        def __init__(self, st):
            self.f_flag = st.f_flag | os.ST_RDONLY

    monkeypatch.setattr(pf.os, "statvfs", lambda p: ReadOnly(real(p)))
    with pytest.raises(PreflightError, match="read-only file system; make it writable or point hydra.run.dir"):
        pf.check_creatable(tmp_path / "new" / "run", "hydra.run.dir")
    assert not (tmp_path / "new").exists()


def test_an_output_error_names_the_place_and_its_key(tmp_path: Path):
    import errno

    from compressbench.infra.preflight import describe_output_error

    places = [(tmp_path / "run", "hydra.run.dir"), (tmp_path / "cache", "paths.cache_dir")]
    full = describe_output_error(OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "cache" / "x")),
                                 places)
    assert full.startswith("cannot write ") and "point paths.cache_dir at a larger disk" in full
    denied = describe_output_error(OSError(errno.EACCES, "Permission denied", str(tmp_path / "run" / "y")), places)
    assert denied.startswith("cannot access ") and "point hydra.run.dir at another directory" in denied
