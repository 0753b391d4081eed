"""What the command line refuses, in one line with exit status 2 and no run folder: hostile flags and data that
is not there (in-process where the code path allows: a subprocess costs 1-2 s)."""
from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path

import pytest


class Planted:
    """A pickle that creates a file when it is unpickled: what a rerun file from someone else may hold."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def run_cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *args: str) -> int:
    from compressbench.__main__ import cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["compressbench", *args])
    with pytest.raises(SystemExit) as e:
        cli()
    return e.value.code


@pytest.mark.parametrize("flag", ["--experimental-rerun", "--experimental-rerun=", "--exp"])
def test_the_rerun_flag_is_refused_and_never_unpickles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys,
                                                       flag: str):
    marker = tmp_path / "code-ran"
    planted = tmp_path / "config.pickle"
    planted.write_bytes(pickle.dumps(Planted(marker)))
    args = [flag + str(planted)] if flag.endswith("=") else [flag, str(planted)]
    assert run_cli(monkeypatch, tmp_path, *args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("compressbench: --exp") and "refused" in err[0]
    assert not marker.exists() and not (tmp_path / "outputs").exists()


def test_help_does_not_offer_the_rerun_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys):
    assert run_cli(monkeypatch, tmp_path, "--help") in (0, None)
    out = capsys.readouterr().out
    assert "--multirun" in out and "--config-dir" in out and "experimental-rerun" not in out
    assert os.listdir(tmp_path) == []
    assert run_cli(monkeypatch, tmp_path, "--hydra-help") in (0, None)  # Hydra's own help, filtered
    out = capsys.readouterr().out
    assert "--multirun" in out and "== Configuration groups ==" in out and "experimental-rerun" not in out


# --- data that cannot work: one line, exit 2, no run folder (the path config errors take) -------------------

@pytest.mark.parametrize("override, said", [
    ("dataset.val_fraction=1.5", "dataset.val_fraction=1.5: must be a number in [0, 0.5]"),
    ("dataset=image_folder", "dataset 'image_folder' needs dataset.root="),
    ("dataset=sea_animals", "dataset 'sea_animals' not found at"),
])
def test_a_dataset_that_cannot_load_ends_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys,
                                                     override: str, said: str):
    monkeypatch.setenv("COMPRESSBENCH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("COMPRESSBENCH_CACHE_DIR", str(tmp_path / "cache"))
    assert run_cli(monkeypatch, tmp_path, override) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"compressbench: {said}"), err
    assert not (tmp_path / "outputs").exists()


def test_validate_checks_dataset_options_but_not_files(make_cfg):
    from compressbench.config import ConfigError
    from compressbench.pipeline.plan import validate

    with pytest.raises(ConfigError, match=r"dataset.max_image_pixels=0: must be an integer >= 1"):
        validate(make_cfg("dataset=image_folder", "dataset.root=/nowhere", "dataset.max_image_pixels=0"))
    validate(make_cfg("dataset=sea_animals"))  # a config is checked where the data is not: the run checks files


def test_an_offline_first_use_of_cifar10_says_where_to_put_the_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                      capsys):
    from urllib.error import URLError

    import torchvision.datasets

    def offline(self) -> None:
        raise URLError(OSError(-2, "Name or service not known"))

    monkeypatch.setattr(torchvision.datasets.CIFAR10, "download", offline)
    monkeypatch.setenv("COMPRESSBENCH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("COMPRESSBENCH_CACHE_DIR", str(tmp_path / "cache"))
    assert run_cli(monkeypatch, tmp_path, "dataset=cifar10", "runtime.progress=false") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "dataset 'cifar10' is not under" in err[0] and "offline?" in err[0], err
    assert str(tmp_path / "data" / "cifar-10-batches-py") in err[0]
    assert "cifar-10-python.tar.gz" in err[0] and "dataset=cifar10_jpeg" in err[0]  # how to get them, the other way
    assert not (tmp_path / "outputs").exists()
