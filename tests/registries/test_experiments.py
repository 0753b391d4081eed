"""Every shipped experiment composes and validates (no data is loaded): a typo in a YAML fails here, not after
an hour of someone's training. Sweeps compose once per swept chain."""
from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from compressbench.config import conf_dir
from compressbench.pipeline.plan import validate

EXPERIMENTS = sorted(p.stem for p in (conf_dir() / "experiment").glob("*.yaml"))


def chains(name: str) -> list[str | None]:
    """The chains a sweep experiment runs (its ``hydra.sweeper.params.chain``), or [None] for a single run."""
    node = OmegaConf.load(conf_dir() / "experiment" / f"{name}.yaml")
    swept = OmegaConf.select(node, "hydra.sweeper.params.chain")
    if swept is None:
        return [None]
    override = OverridesParser.create().parse_overrides([f"chain={swept}"])[0]
    return [f"chain=[{','.join(c)}]" for c in override.value().list]


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_composes_and_validates(name: str, tmp_path):
    for chain in chains(name):
        overrides = [f"+experiment={name}", f"paths.data_dir={tmp_path}", *([chain] if chain else [])]
        with initialize_config_dir(config_dir=str(conf_dir()), version_base=None):
            cfg = compose("config", overrides=overrides)
        plan = validate(cfg)
        assert plan.name == cfg.name and plan.chain, (name, chain)
        assert (conf_dir() / "experiment" / f"{name}.yaml").read_text().startswith("# @package _global_"), \
            "an experiment's first line must be '# @package _global_' (Hydra reads it only there)"
