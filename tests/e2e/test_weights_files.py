"""Weights files a user points us at (``init_from``, ``distill.teacher.path``): read weights-only and checked
against the model they must fit before any training; a bad one is a config error that leaves no run folder."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from compressbench.config import ConfigError
from compressbench.models import build_model
from compressbench.pipeline.runner import run

# The synthetic dataset of tests/conftest.py: 4 classes, 1 channel, 8 px.
SHAPE = (4, 1, 8)


def hostile_file(tmp_path: Path, kind: str) -> Path:
    """A weights file of ``kind``, written in tmp_path."""
    path = tmp_path / f"{kind}.pt"
    if kind == "text":
        path.write_text("these are not weights\n")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        torch.save(build_model({"name": "lenet5"}, *SHAPE).state_dict(), path)
        path.write_bytes(path.read_bytes()[:5000])
    elif kind == "wrong_shape":  # LeNet-5 for 7 classes, not 4
        torch.save(build_model({"name": "lenet5"}, 7, 1, 8).state_dict(), path)
    elif kind == "code":
        torch.save({"conv.weight": WritesAFile(str(tmp_path / "pwned"))}, path)
    return path


class WritesAFile:
    """Unpickled, it would create a file: code run by loading a weights file."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


MESSAGES = {"text": "is not a file torch.save wrote", "empty": "is not a file torch.save wrote",
            "truncated": "is not a file torch.save wrote",
            "wrong_shape": r"does not fit LeNet5: 2 tensors of another shape \(classifier.4.weight is \[7, 84\] in "
                           r"the file, \[4, 84\] in the model\)",
            "code": "refusing to load .* could run code"}


def nothing_ran(tmp_path: Path, run_dir: Path) -> bool:
    """No run folder left, and no stage computed (nothing in the cache)."""
    cache = tmp_path / "cache"
    return not run_dir.exists() and not (cache.is_dir() and any(p.name == "entry.json" for p in cache.rglob("*")))


@pytest.mark.parametrize("kind", ["text", "empty", "truncated", "wrong_shape", "code"])
def test_a_bad_init_from_file_is_one_config_error_and_leaves_no_run_folder(make_cfg, tmp_path: Path, kind: str):
    """A 36-line traceback ending in IndexError / EOFError, and the run folder stayed behind."""
    path = hostile_file(tmp_path, kind)
    run_dir = tmp_path / "run"
    with pytest.raises(ConfigError, match=f"^init_from='.*{kind}.pt' is not allowed: .*{MESSAGES[kind]}") as info:
        run(make_cfg(f"init_from={path}"), run_dir)
    assert "\n" not in str(info.value)
    assert nothing_ran(tmp_path, run_dir) and not (tmp_path / "pwned").exists()


def test_a_shape_error_found_on_the_data_leaves_only_what_the_cli_removes(make_cfg, tmp_path: Path):
    """Under the CLI, Hydra made the run folder with .hydra/ and the job log: what the run wrote (status,
    config, split) goes, so the CLI's clean-up removes the folder as for any config error."""
    run_dir = tmp_path / "run"
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / "compressbench.log").write_text("")
    with pytest.raises(ConfigError, match="does not fit"):
        run(make_cfg(f"init_from={hostile_file(tmp_path, 'wrong_shape')}"), run_dir)
    assert sorted(p.name for p in run_dir.iterdir()) == [".hydra", "compressbench.log"]


@pytest.mark.parametrize("kind", ["text", "wrong_shape", "code"])
def test_a_bad_teacher_file_is_refused_before_the_baseline_trains(make_cfg, tmp_path: Path, kind: str):
    """Found only after the baseline had trained, with a 12-line traceback."""
    path = hostile_file(tmp_path, kind)
    cfg = make_cfg("chain=[train,kd]")
    OmegaConf.set_struct(cfg, False)
    cfg.kd = {"stage": "distill", "student": "small_cnn", "student_options": {"width": 4}, "epochs": 1,
              "teacher": {"path": str(path), "model": "lenet5"}}
    run_dir = tmp_path / "run"
    with pytest.raises(ConfigError, match=f"^kd.teacher.path='.*' is not allowed: .*{MESSAGES[kind]}"):
        run(cfg, run_dir)
    assert nothing_ran(tmp_path, run_dir) and not (tmp_path / "pwned").exists()
