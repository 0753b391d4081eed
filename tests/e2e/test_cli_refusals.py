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
