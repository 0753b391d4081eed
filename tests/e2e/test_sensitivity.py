"""Sensitivity analysis: per-layer accuracy vs amount, as an analysis (+analysis=sensitivity) or a stage."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from compressbench.config import BadValue, ConfigError
from compressbench.models import build_model
from compressbench.pipeline.runner import run
from compressbench.results import read_csv
from compressbench.techniques.pruning.layers import classifier_name
from compressbench.techniques.pruning.sensitivity import scan

QUICK = ["measure.latency=false", "finetune.epochs=0"]
LENET5_LAYERS = ["features.0", "features.3", "classifier.0", "classifier.2", "classifier.4"]


def test_analysis_writes_csv_and_figures_and_leaves_the_chain_alone(make_cfg, tmp_path: Path):
    out = tmp_path / "run"
    rows = run(make_cfg("chain=[train,finetune]", "+analysis=sensitivity", "sensitivity.amounts=[0.0,0.5,0.9]",
                        *QUICK), out)
    assert [r["stage"] for r in rows] == ["train", "finetune"]  # an analysis adds no row
    assert rows[1]["nonzero_params"] == rows[1]["params"]  # and prunes nothing in the chain
    folder = out / "analysis" / "sensitivity"
    table = read_csv(folder / "sensitivity.csv")
    magnitude = [r for r in table if r["method"] == "magnitude"]
    filters = [r for r in table if r["method"] == "l1_filter"]
    assert sorted({r["layer"] for r in magnitude}) == sorted(LENET5_LAYERS)
    assert {r["layer"] for r in filters} == set(LENET5_LAYERS) - {"classifier.4"}  # the classes stay
    assert len(magnitude) == 5 * 3 and len(filters) == 4 * 3
    for r in table:
        if float(r["amount"]) == 0.0:  # pruning nothing changes nothing
            assert r["top1"] == r["baseline_top1"] and float(r["top1_drop"]) == 0.0
    conv2 = {float(r["amount"]): r for r in filters if r["layer"] == "features.3"}
    assert int(conv2[0.5]["removed"]) == 8 and int(conv2[0.9]["removed"]) == 14 and conv2[0.9]["of"] == "16"
    for method in ("magnitude", "l1_filter"):
        for kind in ("heatmap", "lines"):
            assert (folder / f"sensitivity_{method}_{kind}.png").stat().st_size > 1000


def test_analysis_after_a_later_stage_and_one_method(make_cfg, tmp_path: Path):
    out = tmp_path / "run"
    run(make_cfg("+analysis=sensitivity", "sensitivity.after=finetune", "sensitivity.methods=[l1_filter]",
                 "sensitivity.amounts=[0.5]", "sensitivity.ignore=[features]", *QUICK), out)
    table = read_csv(out / "analysis/sensitivity/sensitivity.csv")
    assert {r["method"] for r in table} == {"l1_filter"}
    assert {r["layer"] for r in table} == {"classifier.0", "classifier.2"}  # features.* ignored
    assert not (out / "analysis/sensitivity/sensitivity_magnitude_heatmap.png").exists()


@pytest.mark.parametrize("override, message", [
    ("sensitivity.methods=[taylor]", "sensitivity.methods=['taylor'] is not allowed: a non-empty list of l1_filter, "
                                     "magnitude, random"),
    ("sensitivity.amounts=[0.5,1.0]", "sensitivity.amounts=[0.5, 1.0] is not allowed"),
    ("sensitivity.split=train", "sensitivity.split='train' is not allowed: val or test"),
    ("sensitivity.after=polish", "sensitivity.after='polish'"),
])
def test_bad_values_fail_before_any_work(make_cfg, tmp_path: Path, override, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        run(make_cfg("+analysis=sensitivity", override), tmp_path / "run")
    assert not (tmp_path / "run" / "results.csv").exists()


def test_a_layer_that_does_not_exist_fails_the_analysis_with_the_names(make_cfg, tmp_path: Path):
    with pytest.raises(BadValue, match=r"sensitivity\.ignore='conv9'.*features\.0"):  # before any training
        run(make_cfg("+analysis=sensitivity", "sensitivity.ignore=[conv9]", *QUICK), tmp_path / "run")
    assert not (tmp_path / "run/results.csv").exists()


def test_as_a_chain_stage_it_passes_the_model_on(make_cfg, tmp_path: Path):
    cfg = make_cfg(*QUICK)
    OmegaConf.set_struct(cfg, False)
    cfg.scan = {"stage": "sensitivity", "amounts": [0.5], "methods": ["magnitude"]}
    cfg.chain = ["train", "scan"]
    rows = run(cfg, tmp_path / "run")
    assert rows[1]["status"] == "ok" and rows[1]["sensitivity_points"] == 5
    assert rows[1]["nonzero_params"] == rows[0]["nonzero_params"] and rows[1]["test_acc"] == rows[0]["test_acc"]
    assert (tmp_path / "run/stages/01_scan/sensitivity.csv").is_file()


@pytest.mark.parametrize("name", ["resnet8", "lenet300_100"])  # zeroing on every family: test_prune_methods
def test_the_scan_restores_the_model_exactly(name):
    model = build_model({"name": name}, 4, 3, 8).eval()
    x = torch.randn(4, 3, 8, 8)
    before = {k: v.clone() for k, v in model.state_dict().items()}

    def agreement(m):  # a stand-in accuracy: how much of the unpruned prediction survives
        with torch.no_grad():
            return {"top1": 100.0 * float((m(x).argmax(1) == reference).float().mean()), "loss": 0.0}

    with torch.no_grad():
        reference = model(x).argmax(1)
    rows = scan(model, agreement, ["magnitude", "l1_filter"], [0.5, 0.9], [], x[:1], classifier_name(model, x[:1]))
    assert rows and all(0.0 <= r["top1"] <= 100.0 for r in rows)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_a_registered_criterion_scans_too_and_a_gradient_one_is_refused():
    """A criterion added with ``criteria.register`` is a sensitivity method with nothing else to change."""
    from compressbench.stages.sensitivity import SensitivityConfig
    from compressbench.techniques.pruning.criteria import PRUNE_CRITERIA, register

    if "largest_first" not in PRUNE_CRITERIA:  # the registry outlives a test

        @register("largest_first", "weights", "layer")
        def largest_first(weight, generator):  # the opposite of magnitude: a criterion scans must tell apart
            return -weight.detach().flatten().float().abs()

    torch.manual_seed(0)
    model = build_model({"name": "lenet5"}, 10, 1, 28).eval()
    x = torch.randn(8, 1, 28, 28)
    with torch.no_grad():
        reference = model(x)

    def evaluate(m):  # "accuracy" = closeness to the unpruned outputs: the largest weights matter most
        with torch.no_grad():
            return {"top1": -float((m(x) - reference).norm()), "loss": 0.0}

    rows = scan(model, evaluate, ["magnitude", "largest_first", "random"], [0.5], [], x[:1],
                classifier_name(model, x[:1]), generator=torch.Generator().manual_seed(0))
    by = {(r["method"], r["layer"]): r["top1"] for r in rows}
    assert {m for m, _ in by} == {"magnitude", "largest_first", "random"}
    assert by[("largest_first", "classifier.0")] < by[("magnitude", "classifier.0")]  # a different ranking
    SensitivityConfig(methods=["largest_first", "random"])  # allowed by the config too
    with pytest.raises(BadValue, match="methods=.*need no gradients"):
        SensitivityConfig(methods=["taylor"])
