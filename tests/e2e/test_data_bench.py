"""scripts/bench_data.py runs on tiny generated folders and writes every part of its CSV (no timing claims)."""
from __future__ import annotations

from pathlib import Path

import pytest
from imagetrees import write_split
from test_benchmarks import bench


@pytest.mark.slow  # ~20 s: four benchmark parts in a subprocess
def test_bench_data(tmp_path: Path):
    write_split(tmp_path / "split", {"train": 12, "test": 4})
    rows = bench(tmp_path, "bench_data", "--folder", f"mine={tmp_path / 'split'}:16", "--models", "lenet5",
                 "--samples", "32", "--batch-size", "8", "--rounds", "2", "--decode-files", "20")
    load = rows[rows["part"] == "load"].set_index("case")
    assert len(load) == 2 and (load["peak_over_raw"] >= 0).all() and load["images"].tolist() == [48, 48]
    assert load.loc["first", "fingerprint"] == load.loc["cached", "fingerprint"] and set(load["layout"]) == {"split"}
    assert set(rows[rows["part"] == "decode"]["case"]) == {"serial", "threads", "processes"}
    train = rows[rows["part"] == "train"]
    assert set(train["case"]) == {"bare", "stage"} and (train["images_per_s"] > 0).all()
    assert (rows[rows["part"] == "loader"]["images_per_s"] > 0).all()
