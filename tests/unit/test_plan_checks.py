"""Checks ``precheck`` makes on the config alone (no torch, no data): names that become folders, chain order."""
from __future__ import annotations

import pytest
from omegaconf import DictConfig, OmegaConf

from compressbench.config import ConfigError
from compressbench.pipeline.plan import precheck
from compressbench.stages import STAGES

HOSTILE = ["../../../../x", "/abs/dir", "a/b", ".hidden", "..", ""]


def with_nodes(cfg: DictConfig, chain: list[str] | None = None, **nodes: dict) -> DictConfig:
    """``cfg`` with extra stage nodes (by any name) and, if given, ``chain``."""
    OmegaConf.set_struct(cfg, False)
    for name, node in nodes.items():
        cfg[name] = node
    if chain is not None:
        cfg.chain = chain
    return cfg


@pytest.mark.parametrize("name", HOSTILE)
def test_a_stage_name_that_is_a_path_is_refused(make_cfg, name: str):
    """``stages/NN_<name>`` with name ``../../../../x`` wrote layers.csv and weights.cbsp outside the run dir."""
    cfg = with_nodes(make_cfg(), ["train", name], **{name: {"stage": "prune"}})
    with pytest.raises(ConfigError, match=r"^chain=.* is not allowed: stage names that are one folder name each"):
        precheck(cfg)


@pytest.mark.parametrize("name", HOSTILE)
def test_an_analysis_name_that_is_a_path_is_refused(make_cfg, name: str):
    """``analysis/<name>`` with name ``../../../x`` or ``/abs/dir`` wrote its CSV and figures there."""
    cfg = with_nodes(make_cfg("+analysis=sensitivity"), **{name: {"stage": "sensitivity"}})
    cfg.analyses = [name]
    with pytest.raises(ConfigError, match=r"^analyses=.* is not allowed: analysis names that are one folder name"):
        precheck(cfg)


def test_every_stage_kind_declares_what_it_needs_and_hands_on():
    """A new kind declares its place in a chain (StageKind.does, needs_fp32, makes), or a chain could put it where
    it cannot work."""
    shipped = [n for n in STAGES.names() if STAGES.get(n).fn.__module__.startswith("compressbench.")]
    assert len(shipped) == 9  # kinds a test registers (tests/e2e/test_analysis.py) are not shipped
    assert [n for n in shipped if not STAGES.get(n).does] == []


QUANT = {"stage": "quantize", "calibration_batches": 2, "fp32_routes": ["eager"]}


@pytest.mark.parametrize("chain, nodes, fix", [
    (["train", "q", "prune"], {}, "'prune' (kind prune) prunes fp32 weights, but the model leaving 'q' (kind "
                                  "quantize, method static_int8) runs on a deployment runtime"),
    (["train", "q", "finetune"], {}, "put 'finetune' before 'q'"),
    (["train", "q", "enc"], {"enc": {"stage": "encode"}}, "put 'enc' before 'q'"),
    (["train", "q", "again"], {"again": QUANT}, "put 'again' before 'q', or drop one of them"),
    (["train", "q", "exp", "prune"], {"exp": {"stage": "export"}}, "put 'prune' before 'q'"),  # export passes it on
    (["train", "half", "prune"], {"half": {**QUANT, "method": "fp16"}}, "'half' (kind quantize, method fp16)"),
    (["train", "q", "low"], {"low": {"stage": "lowrank"}}, "put 'low' before 'q'"),
    (["train", "q", "kd"], {"kd": {"stage": "distill", "student": "lenet5"}}, "distills from the fp32 model"),
])
def test_a_stage_that_cannot_follow_a_deployed_model_is_refused_before_any_work(make_cfg, chain, nodes, fix):
    """``[train, quantize, prune]`` trained first, then wrote an ``unsupported`` row and exited 0."""
    cfg = with_nodes(make_cfg(), chain, q=QUANT, **nodes)
    with pytest.raises(ConfigError) as info:
        precheck(cfg)
    message = str(info.value)
    assert message.startswith("chain=[") and fix in message and "\n" not in message


@pytest.mark.parametrize("chain, nodes", [
    (["train", "q", "exp"], {"exp": {"stage": "export"}}),  # a deployed model can be exported ...
    (["train", "q", "exp", "exp2"], {"exp": {"stage": "export"}, "exp2": {"stage": "export"}}),
    (["train", "wb", "prune", "finetune"], {"wb": {**QUANT, "method": "weight_bits"}}),  # ... weight_bits stays fp32
    (["train", "q", "scratch"], {"scratch": {"stage": "distill", "student": "lenet5", "loss": []}}),  # reads nothing
    (["train", "prune", "finetune", "q"], {}),
])
def test_chains_that_work_pass(make_cfg, chain, nodes):
    assert precheck(with_nodes(make_cfg(), chain, q=QUANT, **nodes)).chain == chain


def test_an_analysis_after_a_deployed_model_is_refused(make_cfg):
    cfg = with_nodes(make_cfg("+analysis=sensitivity", "sensitivity.after=q"), ["train", "q"], q=QUANT)
    with pytest.raises(ConfigError, match="sensitivity.after='q' is not allowed: a stage whose model is fp32"):
        precheck(cfg)


def test_a_reference_that_deployed_its_model_is_refused(make_cfg):
    """Ratios are against an fp32 reference: a quantized one left every ratio of the run empty, silently."""
    cfg = with_nodes(make_cfg("measure.reference=q"), ["train", "q"], q=QUANT)
    with pytest.raises(ConfigError, match="measure.reference='q' is not allowed: a stage whose model is fp32"):
        precheck(cfg)


def test_a_teacher_from_another_experiments_deployed_stage_is_refused(make_cfg):
    from compressbench.pipeline.plan import validate

    spec = {"experiment": "digits_kd", "stage": "quantize", "overrides": ["model=lenet5", "chain=[train,quantize]"]}
    cfg = with_nodes(make_cfg("dataset=digits", fast=False), ["kd"],
                     kd={"stage": "distill", "student": "lenet5", "teacher": spec})
    with pytest.raises(ConfigError, match="kd.teacher.stage='quantize' is not allowed: a stage of experiment "
                                          "'digits_kd' whose model is fp32"):
        validate(cfg)


def test_a_teacher_stage_that_deployed_its_model_is_refused(make_cfg):
    """A scratch student (loss=[]) makes an fp32 model again after a quantize stage; its KD stage's teacher.stage
    must still be an fp32 one."""
    from compressbench.pipeline.plan import validate

    scratch = {"stage": "distill", "student": "lenet5", "loss": []}
    kd = {"stage": "distill", "student": "lenet5", "teacher": {"stage": "q"}}
    cfg = with_nodes(make_cfg(), ["train", "q", "scratch", "kd"], q=QUANT, scratch=scratch, kd=kd)
    with pytest.raises(ConfigError, match="kd.teacher.stage='q' is not allowed: a stage whose model is fp32"):
        validate(cfg)


def test_validation_changes_nothing_it_checks(make_cfg):
    """What validation resolves (installed runtimes, a smoke run's capped epochs, a teacher's overrides, an
    analysis's stage) is in the plan; the config it read is as it was."""
    from omegaconf import OmegaConf

    from compressbench.pipeline.plan import validate

    cfg = make_cfg("+experiment=digits_deep_compression", "+debug=smoke", "+analysis=sensitivity",
                   "+stage@int8=quantize", "int8.fp32_routes=null", fast=False)
    before = OmegaConf.to_container(cfg, resolve=False)
    plan = validate(cfg)
    assert OmegaConf.to_container(cfg, resolve=False) == before
    assert plan.stages["train"].epochs == 1 and cfg.train.epochs > 1  # capped in the plan only
    assert plan.analyses["sensitivity"].after == plan.reference and cfg.sensitivity.after is None
    assert plan.measure.fp32_routes and cfg.measure.get("fp32_routes") is None
    again = validate(cfg)  # and validating twice gives the same plan
    assert again.stages == plan.stages and again.analyses == plan.analyses
