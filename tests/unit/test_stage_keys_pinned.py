"""The cache keys of every shipped experiment, pinned: a refactor of the core must not change one.

A changed key silently recomputes a user's cached trainings (hours on a CPU), so keys change only on purpose:
then regenerate the pin with ``COMPRESSBENCH_PIN_KEYS=1 pytest tests/unit/test_stage_keys_pinned.py`` and say
why in the commit. The training environment (torch version, precision the CPU supports) is held fixed here, so
the pin is the same on every machine; what it guards is the config → key mapping.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from omegaconf import DictConfig

from compressbench.config import conf_dir

PIN = Path(__file__).resolve().parents[1] / "data" / "stage_keys.json"
EXPERIMENTS = sorted(p.stem for p in (conf_dir() / "experiment").glob("*.yaml"))


def experiment_keys(cfg: DictConfig) -> dict[str, object]:
    """The keys of ``cfg``'s own chain, and of every stage node it defines as if it came first (the branches of
    a sweep are nodes its chain does not name)."""
    from compressbench.pipeline import keys as keys_module
    from compressbench.pipeline.cache import stage_key
    from compressbench.pipeline.plan import EXPERIMENTS as OTHERS
    from compressbench.pipeline.plan import typed, validate
    from compressbench.stages import STAGES

    plan = validate(cfg)
    nodes = {}
    for name, node in cfg.items():
        if isinstance(node, DictConfig) and node.get("stage") in STAGES.names():
            kind = STAGES.get(node.stage)
            scfg = plan.stages.get(name) or typed(kind.config, node, name)
            salt = kind.cache_salt(scfg, OTHERS, "fp")
            nodes[str(name)] = stage_key("", stage=kind.key_fields(scfg), **({"salt": salt} if salt else {}))
    return {"chain": keys_module.chain_keys(plan, "fp", OTHERS), "nodes": nodes}


@pytest.fixture
def fixed_environment(monkeypatch):
    from compressbench.pipeline import keys as keys_module

    monkeypatch.setattr(keys_module, "training_environment", lambda *args: {"precision": "fixed"})


def test_every_shipped_experiments_keys_are_pinned(make_cfg, fixed_environment):
    found = {name: experiment_keys(make_cfg(f"+experiment={name}", fast=False)) for name in EXPERIMENTS}
    if os.environ.get("COMPRESSBENCH_PIN_KEYS") == "1":
        PIN.write_text(json.dumps(found, indent=1, sort_keys=True) + "\n")
    pinned = json.loads(PIN.read_text())
    assert sorted(found) == sorted(pinned), "an experiment was added or removed: regenerate the pin (module doc)"
    changed = [name for name in found if found[name] != pinned[name]]
    assert not changed, f"stage keys changed for {changed}: every cached result of theirs would be recomputed"
