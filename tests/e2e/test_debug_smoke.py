"""+debug=smoke: one epoch everywhere, a few images, keyed apart from real runs."""
from __future__ import annotations

from pathlib import Path

import pytest

from compressbench.pipeline.keys import chain_keys
from compressbench.pipeline.plan import EXPERIMENTS, validate
from compressbench.pipeline.runner import run


def test_smoke_caps_every_training_and_keys_it_apart(make_cfg):
    cfg = make_cfg("+experiment=digits_deep_compression", "+debug=smoke", fast=False)
    plan = validate(cfg)
    epochs = {name: getattr(s, "epochs", None) for name, s in plan.stages.items()}
    assert set(epochs.values()) <= {0, 1, None} and epochs["train"] == 1
    assert plan.stages["prune"].retrain.epochs <= 1  # nested trainings too

    def keys(*overrides: str) -> list[str]:
        c = make_cfg("+experiment=digits_deep_compression", *overrides, fast=False)
        return chain_keys(validate(c), "fp", EXPERIMENTS)

    real, capped, limited = keys(), keys("runtime.max_epochs=1"), keys("+dataset.limit=64")
    assert capped[0] == real[0] and all(a != b for a, b in zip(capped[1:], real[1:], strict=True))  # cap keyed
    assert limited[0] != real[0]  # the limit is in the dataset node (and the data fingerprint)


def test_smoke_measures_every_route_briefly_on_few_images(make_cfg):
    # Smoke's time is proportional to its images and its throughput batch (issue 25: 256 images and batch 32
    # took resnet50_prune_quant 437-561 s on 2 loaded cores); every route is still measured once.
    cfg = make_cfg("+experiment=resnet50_prune_quant", "+debug=smoke", "dataset=digits", fast=False)
    plan = validate(cfg)
    m = plan.measure
    assert cfg.dataset.limit <= 32 and plan.runtime.max_epochs == 1
    assert m.batch_size <= 4 and m.throughput_threads == 1 and m.rounds <= 2 and m.iters <= 3 and m.warmup == 1 and m.min_time_s == 0
    assert m.latency and set(m.fp32_routes) == set(validate(make_cfg(fast=False)).measure.fp32_routes)


def test_a_smoke_run_goes_through_on_few_images(make_cfg, tmp_path: Path):
    rows = run(make_cfg("+debug=smoke", "chain=[train,prune,finetune]", "dataset=digits", fast=False),
               tmp_path / "run")
    assert [r["status"] for r in rows] == ["ok"] * 3 and rows[0]["test_images"] <= 32


def test_limit_must_be_positive(make_cfg, tmp_path: Path):
    with pytest.raises(ValueError, match="dataset.limit=0"):
        run(make_cfg("+debug=smoke", "dataset.limit=0"), tmp_path / "run")


def test_a_teacher_from_another_experiment_is_smoke_trained_too(make_cfg):
    kd = ("+stage@kd=distill", "kd.student=small_cnn", "kd.teacher.experiment=digits_kd", "kd.teacher.stage=train",
          "chain=[kd]", "dataset=digits")
    plan = validate(make_cfg(*kd, "+debug=smoke", fast=False))  # was refused: the teacher's data differ
    assert plan.stages["kd"].teacher.overrides == ["++runtime.max_epochs=1", "++dataset.limit=32"]
    real = validate(make_cfg(*kd, fast=False))
    assert real.stages["kd"].teacher.overrides == []  # a real run asks for the real teacher

    def key(*overrides: str) -> str:
        c = make_cfg(*kd, *overrides, fast=False)
        return chain_keys(validate(c), "fp", EXPERIMENTS)[1]

    assert key("+debug=smoke") != key("+debug=smoke", "kd.teacher.overrides=['++runtime.max_epochs=2']")


@pytest.mark.parametrize("experiment", ["cifar10_resnet20_budget", "cifar10_resnet20_converged", "resnet56_qat"])
def test_smoke_caps_a_warm_up_with_the_epochs(make_cfg, experiment: str):
    """A warm-up longer than the capped run is cut to it (one check of the capped options, not two)."""
    from compressbench.pipeline.plan import precheck

    plan = precheck(make_cfg(f"+experiment={experiment}", "+debug=smoke", fast=False))
    for scfg in plan.stages.values():
        epochs = getattr(scfg, "epochs", None)
        if epochs is not None:
            assert epochs <= 1 and getattr(scfg, "warmup_epochs", 0) <= epochs
