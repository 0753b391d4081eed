"""The command line as a user runs it: ``python -m compressbench`` and ``python -m compressbench.report``."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from clihelp import FAST, cli


def test_single_run_prints_a_table_and_writes_its_run_dir(tmp_path: Path):
    proc = cli(tmp_path, *FAST, f"hydra.run.dir={tmp_path / 'run'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "test_acc" in proc.stdout and "finetune" in proc.stdout
    rows = pd.read_csv(tmp_path / "run" / "results.csv")
    assert list(rows["stage"]) == ["train", "finetune"] and set(rows["status"]) == {"ok"}
    assert (tmp_path / "run" / "plots" / "accuracy_vs_size.png").is_file()
    # The run dir is said at the start and the end, and the job log (logging, not print) keeps the story.
    said = proc.stdout + proc.stderr
    assert said.count(str((tmp_path / "run").resolve())) >= 2
    log = (tmp_path / "run" / "compressbench.log").read_text()
    assert "run dir:" in log and "done; results" in log


def test_multirun_aggregates_the_sweep(tmp_path: Path):
    sweep = tmp_path / "sweep"
    proc = cli(tmp_path, "-m", *FAST, "finetune.lr=0.01,0.001", f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = pd.read_csv(sweep / "summary.csv")
    assert len(summary) == 4 and summary["run_id"].nunique() == 2
    # Both jobs share the train stage: the second one loads it from the cache.
    train = summary[summary["stage"] == "train"]
    assert sorted(train["cache_hit"]) == [False, True]
    assert {o.split()[-1] for o in summary["overrides"]} == {"finetune.lr=0.01", "finetune.lr=0.001"}
    assert (sweep / "plots" / "accuracy_vs_size.png").is_file()
    # Each job has its summary; the figures of every job's points are drawn once, for the sweep.
    assert all((sweep / j / "summary.md").is_file() and not (sweep / j / "plots").exists() for j in ("0", "1"))


def test_a_failing_job_does_not_stop_the_sweep_and_is_reported(tmp_path: Path):
    sweep = tmp_path / "sweep"
    proc = cli(tmp_path, "-m", *FAST, "train.lr=1e12,0.05", "train.momentum=0", f"hydra.sweep.dir={sweep}")
    assert proc.returncode != 0  # the exit status says a job failed
    summary = pd.read_csv(sweep / "summary.csv")
    assert set(summary["status"]) == {"ok", "diverged"}
    assert len(summary[summary["overrides"].str.contains("0.05")]) == 2  # the healthy job ran both stages
    md = (sweep / "summary.md").read_text()
    assert "## Failed jobs" in md and "train.lr=1000000000000.0" in md


@pytest.mark.slow  # the default suite stays under 10 minutes
def test_a_job_with_a_config_error_is_listed_as_failed_in_the_sweep(tmp_path: Path):
    sweep = tmp_path / "sweep"
    proc = cli(tmp_path, "-m", *FAST, "finetune.epochs=-3,1", f"hydra.sweep.dir={sweep}")
    assert proc.returncode != 0
    md = (sweep / "summary.md").read_text()
    assert "## Failed jobs" in md and "finetune.epochs=-3 is not allowed" in md
    assert set(pd.read_csv(sweep / "summary.csv")["status"]) == {"ok"}  # the healthy job ran


def test_report_is_idempotent(make_cfg, tmp_path: Path):
    from compressbench.pipeline.runner import run
    from compressbench.report import main as report_main

    run_dir = tmp_path / "run"
    run(make_cfg(), run_dir)
    assert report_main([str(run_dir), "--findings-dir", str(tmp_path / "findings")]) == 0
    before = (run_dir / "summary.csv").read_text()
    assert report_main([str(run_dir), "--findings-dir", str(tmp_path / "findings")]) == 0
    assert (run_dir / "summary.csv").read_text() == before
    assert (tmp_path / "findings" / "default" / "results.csv").is_file()


def test_config_error_exits_nonzero_with_the_reason(tmp_path: Path):
    proc = cli(tmp_path, *FAST, "train.epochs=-3", f"hydra.run.dir={tmp_path / 'run'}")
    assert proc.returncode == 2
    assert "compressbench: train.epochs=-3 is not allowed: >= 0" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "run").exists()  # one line, no folder left
    proc = cli(tmp_path, *FAST, "train.epochs=-3")  # the default run dir: outputs/default/<time> goes too
    assert proc.returncode == 2 and not (tmp_path / "outputs").exists()


@pytest.mark.parametrize("args", [["--help"]])
def test_help_works_offline(tmp_path: Path, args):
    proc = cli(tmp_path, *args)
    assert proc.returncode == 0 and "model" in proc.stdout


@pytest.mark.parametrize("name", ["../../escaped", "../escaped", "/abs/escaped"])
def test_a_name_that_is_a_path_is_refused_before_any_folder(tmp_path: Path, name: str):
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    proc = cli(work, *FAST, f"name={name}")  # the default run dir: outputs/${cb_slug:${name}}/...
    assert proc.returncode != 0 and "not a safe folder name" in proc.stderr, proc.stderr[-2000:]
    assert not any((d / "escaped").exists() for d in (tmp_path, tmp_path / "a", work))
    assert not (work / "outputs").exists()  # nothing at all: the slug is checked before Hydra makes a folder


def test_validate_refuses_a_name_that_is_a_path(make_cfg):
    from compressbench.config import ConfigError
    from compressbench.pipeline.plan import validate

    with pytest.raises(ConfigError, match="name='../x' is not allowed: one folder name"):
        validate(make_cfg("name=../x"))


@pytest.mark.parametrize("override, expected", [
    ("prune.amout=0.3", "did you mean prune.amount?"),
    ("trian.epochs=3", "did you mean train.epochs?"),
])
def test_a_typo_in_a_key_gets_did_you_mean(tmp_path: Path, override: str, expected: str):
    proc = cli(tmp_path, override)
    assert proc.returncode != 0
    hint = proc.stderr.strip().splitlines()[-1]
    assert hint.startswith("compressbench: ") and expected in hint and f"+{override}" in hint, proc.stderr
    assert not (tmp_path / "outputs").exists()


def test_a_new_key_added_on_purpose_gets_no_hint(tmp_path: Path):
    proc = cli(tmp_path, "+prune.my_note=1", "chain=[train,nope]")  # fails in validation, not on the key
    assert proc.returncode == 2 and "did you mean prune" not in proc.stderr, proc.stderr
