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
    rows = read_csv(write_results(tmp_path / "r.csv", [{"speedup": math.nan, "encoded_bytes": None}]))
    assert rows[0]["speedup"] == "" and rows[0]["encoded_bytes"] == ""


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
