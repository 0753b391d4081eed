"""The generic analysis hook: a side study after a stage, on a copy, with no row and no effect on the chain."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from compressbench.config import ConfigError, StageConfig
from compressbench.pipeline.runner import RunFailed, run
from compressbench.stages import STAGES, StageResult, register_stage


@dataclass
class ProbeConfig(StageConfig):
    stage: str = "probe_analysis"
    after: str | None = None
    fail: bool = False


if "probe_analysis" not in STAGES:
    @register_stage("probe_analysis", ProbeConfig)
    def probe(artifact, cfg, env):
        model = artifact.module
        text = f"{env.name} {sum(p.numel() for p in model.parameters())}"
        for p in model.parameters():  # vandalise the copy: the chain must not see it
            p.data.zero_()
        if cfg.fail:
            raise RuntimeError("probe failed on purpose")
        return StageResult(artifact, files={"probe.txt": text.encode()})


def with_probe(cfg, **opts):
    OmegaConf.set_struct(cfg, False)
    cfg.probe = {"stage": "probe_analysis", **opts}
    cfg.analyses = ["probe"]
    return cfg


def test_analysis_runs_after_the_reference_on_a_copy(make_cfg, tmp_path: Path):
    rows = run(with_probe(make_cfg("train.epochs=3")), tmp_path / "run")
    assert (tmp_path / "run/analysis/probe/probe.txt").read_text().startswith("probe ")
    assert [r["stage"] for r in rows] == ["train", "finetune"]  # no row of its own
    assert rows[1]["nonzero_params"] > 0  # the zeroed copy did not leak into the chain


def test_analysis_after_must_name_a_stage(make_cfg, tmp_path: Path):
    with pytest.raises(ConfigError, match="probe.after='polish'"):
        run(with_probe(make_cfg(), after="polish"), tmp_path / "run")


def test_failing_analysis_finishes_the_chain_then_fails_the_run(make_cfg, tmp_path: Path):
    with pytest.raises(RunFailed, match="analysis 'probe' failed"):
        run(with_probe(make_cfg(), fail=True), tmp_path / "run")
    assert len((tmp_path / "run/results.csv").read_text().splitlines()) == 3  # header + both stages
