"""A real Optuna budget search (``+hparams_search=...``) on the offline digits default, read back from its
sweep dir: Optuna's own answer (optimization_results.yaml) and summary.md's Pareto set must agree."""
from __future__ import annotations

from pathlib import Path

import pytest
from clihelp import cli
from omegaconf import OmegaConf

from compressbench.report import pareto_set
from compressbench.results import read_csv
from compressbench.results.objective import WORST, stored_size

pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")

LIMIT = 30000  # bytes: some chains of the search space fit, some do not (which ones depends on the trial)


@pytest.mark.slow  # ~17 s: the default suite stays under 10 minutes
def test_multi_objective_search_agrees_with_the_summarys_pareto_set(tmp_path: Path):
    sweep = tmp_path / "sweep"
    proc = cli(tmp_path, "+hparams_search=prune_quant_pareto", "+debug=smoke", "hydra.sweeper.n_trials=3",
               f'objective.constraints=["size_bytes<={LIMIT}"]',  # quoted: Hydra's grammar has no bare <
               "runtime.progress=false", f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = OmegaConf.to_container(OmegaConf.load(sweep / "optimization_results.yaml"))
    assert result["name"] == "optuna"
    jobs = pareto_set.jobs(sweep)
    assert len(jobs) == 3 and all(j.state == "done" for j in jobs)  # one job per trial

    # Each job is infeasible exactly when its last stage's stored size breaks the limit.
    for j in jobs:
        last = read_csv(sweep / j.run_dir / "results.csv")[-1]
        assert j.result.feasible == (stored_size(last)[0] <= LIMIT), (j.run_dir, j.result)

    # Optuna's front (infeasible trials carry the worst values) is the summary's front, job for job.
    solutions = [s for s in result["solutions"] if s["values"] != [-WORST, WORST]]
    front = pareto_set.front(jobs)
    assert len(solutions) == len(front)
    for s in solutions:
        tokens = {f"{k}={v}" for k, v in s["params"].items()}
        matched = [j for j in front if tokens <= set(j.overrides)]
        assert len(matched) == 1, (s, [j.overrides for j in front])
        assert matched[0].result.values == pytest.approx(tuple(s["values"]))
        assert s["values"][1] <= LIMIT

    md = (sweep / "summary.md").read_text()
    head = f"## Pareto set of the sweep: test_acc:max, size_bytes:min subject to size_bytes<={LIMIT}"
    assert head in md
    section = md.split(head)[1].split("\n## ")[0]
    infeasible = sum(not j.result.feasible for j in jobs)
    assert f"3 jobs: {len(front)} in the Pareto set" in section and f"{infeasible} infeasible" in section
    rows = [line.split(" | ")[0].lstrip("| ") for line in section.splitlines()
            if line.startswith("| ") and not line.startswith("| job") and "none feasible" not in line]
    assert sorted(rows) == sorted(j.run_dir for j in front)
    # The baseline was trained once: every later trial loaded it from the stage cache.
    hits = [read_csv(sweep / j.run_dir / "results.csv")[0]["cache_hit"] for j in jobs]
    assert hits.count("False") == 1
