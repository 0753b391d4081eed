"""+debug=smoke: one epoch everywhere, a few images, keyed apart from real runs."""
from __future__ import annotations

from pathlib import Path

import pytest

from compressbench.pipeline.keys import chain_keys
from compressbench.pipeline.plan import validate
from compressbench.pipeline.runner import run


def test_smoke_caps_every_training_and_keys_it_apart(make_cfg):
    cfg = make_cfg("+experiment=digits_deep_compression", "+debug=smoke", fast=False)
    plan = validate(cfg)
    epochs = {name: getattr(s, "epochs", None) for name, s in plan.stages.items()}
    assert set(epochs.values()) <= {0, 1, None} and epochs["train"] == 1
    assert plan.stages["prune"].retrain.epochs <= 1  # nested trainings too
    real = make_cfg("+experiment=digits_deep_compression", fast=False)
    assert chain_keys(cfg, plan, "fp")[1:] != chain_keys(real, validate(real), "fp")[1:]


def test_a_smoke_run_goes_through_on_few_images(make_cfg, tmp_path: Path):
    rows = run(make_cfg("+debug=smoke", "chain=[train,prune,finetune]", "dataset=digits", fast=False),
               tmp_path / "run")
    assert [r["status"] for r in rows] == ["ok"] * 3 and rows[0]["test_images"] <= 256


def test_limit_must_be_positive(make_cfg, tmp_path: Path):
    with pytest.raises(ValueError, match="dataset.limit=0"):
        run(make_cfg("+debug=smoke", "dataset.limit=0"), tmp_path / "run")
