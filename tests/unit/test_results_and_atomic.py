from __future__ import annotations

import math
import os
from pathlib import Path

import pytest

from compressbench.infra.atomic import TMP_PREFIX, atomic_write
from compressbench.results import COLUMNS, read_csv, write_results


def test_results_csv_has_every_core_column_in_order(tmp_path: Path):
    path = write_results(tmp_path / "results.csv", [{"stage": "train", "test_acc": 97.5, "custom": 1}])
    header = path.read_text().splitlines()[0].split(",")
    assert header[: len(COLUMNS)] == COLUMNS
    assert header[-1] == "custom"


def test_nan_and_none_are_written_empty_never_as_numbers(tmp_path: Path):
    rows = read_csv(write_results(tmp_path / "r.csv", [{"speedup_vs_reference": math.nan, "encoded_bytes": None}]))
    assert rows[0]["speedup_vs_reference"] == "" and rows[0]["encoded_bytes"] == ""


def test_a_writer_that_dies_leaves_the_previous_file(tmp_path: Path):
    target = tmp_path / "results.csv"
    target.write_text("good\n")

    def dies_half_way(f):
        f.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_write(target, dies_half_way)
    assert target.read_text() == "good\n"
    assert not [p for p in os.listdir(tmp_path) if p.startswith(TMP_PREFIX)]


def test_written_files_keep_the_users_umask(tmp_path: Path, monkeypatch):
    """mkstemp's 0600 would make a team's shared cache or results unreadable to the others."""
    from compressbench.infra import atomic

    path = atomic_write(tmp_path / "shared.csv", lambda f: f.write(b"x"))
    assert path.stat().st_mode & 0o777 == 0o666 & ~atomic.UMASK  # what open() would have made
    for mask, mode in ((0o002, 0o664), (0o022, 0o644), (0o077, 0o600)):
        monkeypatch.setattr(atomic, "UMASK", mask)
        assert atomic_write(tmp_path / f"{mask}.csv", lambda f: f.write(b"x")).stat().st_mode & 0o777 == mode


def test_stale_temp_files_are_removed_fresh_ones_kept(tmp_path: Path):
    from compressbench.infra.atomic import remove_stale_temps

    old, fresh = tmp_path / "e" / f"{TMP_PREFIX}model.x", tmp_path / f"{TMP_PREFIX}results.csv.y"
    old.parent.mkdir()
    old.write_bytes(b"half"), fresh.write_bytes(b"half")
    os.utime(old, (0, 0))  # written long ago by a writer that died
    assert remove_stale_temps(tmp_path, every_s=3600) == 1
    assert not old.exists() and fresh.exists()
    old.write_bytes(b"half")
    os.utime(old, (0, 0))
    assert remove_stale_temps(tmp_path, every_s=3600) == 0 and old.exists()  # walked a moment ago: not again
    assert remove_stale_temps(tmp_path) == 1
