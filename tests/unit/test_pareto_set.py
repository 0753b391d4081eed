"""The sweep summary's Pareto set: read back from synthetic job folders, for the objective each job ran with."""
from __future__ import annotations

import json
from pathlib import Path

from omegaconf import OmegaConf
from report_rows import baseline, row, write_run

from compressbench.report import pareto_set, write_report

PARETO = {"metrics": ["test_acc:max", "size_bytes:min"], "constraints": ["size_bytes<=40000"], "stage": None}


def job(root: Path, name: str, acc: float, size: float, objective: dict = PARETO, status: str = "ok",
        **extra) -> None:
    """A sweep job folder as the runner leaves it: results.csv, status.json and the resolved config.yaml."""
    overrides = f"prune.amount={name} +hparams_search=demo"
    rows = [baseline(f"r{name}", overrides=overrides),
            row(f"r{name}", 1, "prune", "prune", acc, size, overrides=overrides, method="magnitude", **extra)]
    write_run(root, name, rows, status=status)
    OmegaConf.save(OmegaConf.create({"chain": ["train", "prune"], "objective": objective}), root / name / "config.yaml")


def sweep(root: Path, encoded: bool = True) -> None:
    job(root, "0", 95.0, 30000)                   # on the front: most accurate feasible
    job(root, "1", 90.0, 20000)                   # on the front: smallest
    job(root, "2", 89.0, 25000)                   # dominated by 1
    job(root, "3", 97.0, 50000)                   # most accurate, but breaks size_bytes<=40000
    if encoded:  # its verified encoded file is its size: smaller and more accurate than 0 and 1
        job(root, "4", 96.0, 89541, encoded_bytes=15000.0)
    job(root, "5", 99.0, 1000, status="failed")   # a failed job never counts, whatever its rows say


def test_front_is_the_feasible_non_dominated_jobs(tmp_path: Path):
    sweep(tmp_path)
    scored = {j.run_dir: j for j in pareto_set.jobs(tmp_path)}
    assert set(scored) == {"0", "1", "2", "3", "4", "5"}
    assert scored["4"].result.values == (96.0, 15000.0)
    assert "violates size_bytes<=40000" == scored["3"].result.reason and scored["5"].result.reason == "job failed"
    # 4 dominates 0 and 1 (more accurate and smaller), and 2 in turn.
    assert [j.run_dir for j in pareto_set.front(list(scored.values()))] == ["4"]
    without4 = [j for j in scored.values() if j.run_dir != "4"]
    assert sorted(j.run_dir for j in pareto_set.front(without4)) == ["0", "1"]


def test_ties_stay_on_the_front_as_in_optuna(tmp_path: Path):
    job(tmp_path, "0", 90.0, 20000)
    job(tmp_path, "1", 90.0, 20000)
    assert sorted(j.run_dir for j in pareto_set.front(pareto_set.jobs(tmp_path))) == ["0", "1"]


def test_summary_lists_the_pareto_set_with_overrides_and_counts_the_infeasible(tmp_path: Path):
    sweep(tmp_path, encoded=False)  # the front is 0 and 1
    write_report(tmp_path)
    md = (tmp_path / "summary.md").read_text()
    section = md.split("## Pareto set of the sweep: test_acc:max, size_bytes:min subject to size_bytes<=40000")[1]
    section = section.split("\n## ")[0]
    assert "5 jobs: 2 in the Pareto set" in section and "2 infeasible or failed" in section
    table = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| job")]
    assert [line.split(" | ")[0] for line in table] == ["| 0", "| 1"]  # best accuracy first
    assert "`prune.amount=0`" in table[0] and "95.00" in table[0] and "30kB (artifact)" in table[0]
    assert "Every job had `+hparams_search=demo`" in section
    assert "violates size_bytes<=40000: job 3" in section and "job failed: job 5" in section
    # Regenerated from the files: the same section again.
    write_report(tmp_path)
    assert (tmp_path / "summary.md").read_text().split("_Report made")[0] == md.split("_Report made")[0]


def test_jobs_with_another_objective_get_their_own_table_and_a_single_run_none(tmp_path: Path):
    sweep(tmp_path)
    job(tmp_path, "6", 50.0, 10000, objective={"metrics": ["size_bytes:min"]})
    lines = pareto_set.section(tmp_path)
    heads = [line for line in lines if line.startswith("## Pareto set")]
    assert len(heads) == 2 and heads[1] == "## Pareto set of the sweep: size_bytes:min"
    single = tmp_path / "single"
    job(single, "only", 90.0, 20000)
    assert pareto_set.section(single / "only") == [] and pareto_set.section(single) == []


def test_a_job_still_running_or_without_config_is_left_out(tmp_path: Path):
    sweep(tmp_path)
    (tmp_path / "2" / "config.yaml").unlink()
    status = tmp_path / "1" / "status.json"
    status.write_text(json.dumps({**json.loads(status.read_text()), "status": "running"}))
    names = {j.run_dir for j in pareto_set.jobs(tmp_path) if j.state != "in progress"}
    assert names == {"0", "3", "4", "5"}
    assert any(line.startswith("4 jobs: ") for line in pareto_set.section(tmp_path))


def test_a_constrained_column_is_shown_beside_the_metrics(tmp_path: Path):
    single = {"metrics": ["test_acc:max"], "constraints": ["size_bytes<=40000"]}
    job(tmp_path, "0", 95.0, 30000, objective=single)
    job(tmp_path, "1", 97.0, 50000, objective=single)
    lines = pareto_set.section(tmp_path)
    assert "| job | overrides | test_acc:max | size_bytes | stage |" in lines
    assert [line for line in lines if line.startswith("| 0 |")][0].endswith("| 95.00 | 30kB (artifact) | prune |")
