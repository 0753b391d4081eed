"""Accuracy changes are paired over the test images where runs kept per-image results, and said to be unpaired
where they did not (older runs)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from report_rows import baseline, row, write_run

from compressbench.report import build, collect, stats, write_report
from compressbench.report.summary import segments
from compressbench.results.per_image import stage_dir, write_hits

N = 2000


def _hits(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Baseline 72% right; the candidate gains 12 images and loses none, and ties two ways on 4 of its hits."""
    rng = np.random.default_rng(seed)
    base = (rng.random(N) < 0.72).astype(np.uint8)
    cand = base.copy()
    cand[np.flatnonzero(base == 0)[:12]] = 1
    cand[np.flatnonzero(base == 1)[:4]] = 2  # credit ½ each: −2 images
    return base, cand


def _acc(hits: np.ndarray) -> float:
    return 100 * float(np.where(hits > 0, 1 / np.maximum(hits, 1), 0).mean())


def _tree(root: Path, keep_hits: bool = True, seeds: tuple[int, ...] = (0,), lr: float = 0.1) -> None:
    for seed in seeds:
        base, cand = _hits(seed)
        over = {"seed": seed, "overrides": f"runtime.seed={seed} finetune.lr={lr}"}
        rows = [baseline(f"r{seed}", _acc(base), **over), row(f"r{seed}", 1, "int8", "quantize", _acc(cand), 3e4, **over),
                row(f"r{seed}", 2, "finetune", "train", _acc(cand), 3e4, **over)]
        run_dir = write_run(root, str(seed), rows, test_images=N)
        if keep_hits:
            for r, hits in zip(rows, (base, cand, cand), strict=True):
                write_hits(stage_dir(run_dir, r["stage_index"], r["stage"]), hits)


def test_a_paired_interval_is_much_narrower_than_the_unpaired_one():
    base, cand = _hits()
    credit = [np.where(h > 0, 1 / np.maximum(h, 1), 0) for h in (base, cand)]
    diff, lo, hi = stats.paired(credit[1] - credit[0])
    _, nlo, nhi = stats.newcombe(_acc(cand), N, _acc(base), N)
    assert diff == pytest.approx(_acc(cand) - _acc(base)) == pytest.approx(100 * 10 / N)
    assert lo <= diff <= hi and nlo <= diff <= nhi
    assert (hi - lo) < (nhi - nlo) / 5  # only the 16 images the two score differently add noise
    assert lo > 0 > nlo  # +0.5 pt: outside noise paired, "within noise" unpaired
    # No image differs: no noise at all, and a 0/1 table is the McNemar-type interval on discordant pairs.
    assert stats.paired(np.zeros(N))[0] == 0.0 and abs(stats.paired(np.zeros(N))[2]) < 0.1


@pytest.mark.parametrize("seeds", [(0,), (0, 1)])
def test_the_report_pairs_changes_over_the_images_it_kept(tmp_path: Path, seeds: tuple[int, ...]):
    _tree(tmp_path, seeds=seeds)
    rows = collect(tmp_path)[0]
    paired, unpaired = (build(rows, tmp_path).set_index("stage"), build(rows).set_index("stage"))
    assert paired.loc["int8", "delta_method"] == "paired" and unpaired.loc["int8", "delta_method"] == "unpaired"
    width = paired.loc["int8", "delta_hi"] - paired.loc["int8", "delta_lo"]
    assert width < (unpaired.loc["int8", "delta_hi"] - unpaired.loc["int8", "delta_lo"]) / 3
    if len(seeds) == 1:  # with seeds the t interval of two per-seed differences is wider still
        assert paired.loc["int8", "within_noise"] is False and unpaired.loc["int8", "within_noise"] is True
    seg = segments(build(rows, tmp_path)).set_index("technique").iloc[0]
    assert seg["delta_method"] == "paired"
    write_report(tmp_path, figures=False)
    md = (tmp_path / "summary.md").read_text()
    assert "Δ pt [95%]: Paired over the test images" in md and "UNPAIRED" not in md.split("## How to read")[1]
    assert "(unpaired)" not in md


def test_old_runs_without_per_image_results_fall_back_to_unpaired_and_say_so(tmp_path: Path):
    _tree(tmp_path, keep_hits=False)
    table = build(collect(tmp_path)[0], tmp_path)
    assert set(table.loc[~table["is_baseline"], "delta_method"]) == {"unpaired"}
    write_report(tmp_path, figures=False)
    how = (tmp_path / "summary.md").read_text().split("## How to read")[1]
    assert "Δ pt [95%]: UNPAIRED: these runs kept no per-image results" in how
    assert "these runs predate it (no test_ties column)" in how


def test_a_report_mixing_runs_with_and_without_per_image_results_says_which(tmp_path: Path):
    _tree(tmp_path / "new")
    _tree(tmp_path / "old", keep_hits=False, seeds=(5,), lr=0.2)  # another branch, from before
    write_report(tmp_path, figures=False)
    how = (tmp_path / "summary.md").read_text().split("## How to read")[1]
    assert "2 stage(s) paired over the test images" in how and "The other 2 (runs without per-image" in how
    branches = (tmp_path / "summary.md").read_text().split("## Branches")[1].split("##")[0]
    assert branches.count("(unpaired)") == 1  # the old branch's change, marked in its cell; the new one not


def test_a_findings_copy_keeps_the_per_image_results_and_reports_them_paired_again(tmp_path: Path):
    from compressbench.report import write_findings

    _tree(tmp_path / "runs")
    (target,) = write_findings(tmp_path / "runs", tmp_path / "findings")
    assert (target / "0" / "stages" / "01_int8" / "test_hits.npy").is_file()
    again = build(collect(target)[0], target).set_index("stage")  # the findings folder on its own
    assert again.loc["int8", "delta_method"] == "paired"
