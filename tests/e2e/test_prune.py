"""The prune stage in real chains: achieved ratios, honest sizes, schedules, the cache, and bad input."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from compressbench.config import BadValue, ConfigError
from compressbench.models import build_model
from compressbench.pipeline.runner import run
from compressbench.results import read_csv
from compressbench.stages.prune import PruneConfig, check_layers
from compressbench.techniques.pruning.encoding import decode

RGB16 = ["dataset.in_channels=3", "dataset.image_size=16"]
QUICK = ["measure.latency=false", "finetune.epochs=0"]  # for tests about pruning, not timing or finetuning


def with_prune(cfg, chain=("train", "prune", "finetune"), **opts):
    """The composed config with a ``prune`` node of ``opts`` in the chain (the default chain may lack one)."""
    OmegaConf.set_struct(cfg, False)
    cfg.prune = {"stage": "prune", **opts}
    cfg.chain = list(chain)
    return cfg


def by_stage(rows):
    return {r["stage"]: r for r in rows}


def stage_file(run_dir: Path, index: int, name: str, file: str) -> Path:
    return run_dir / "stages" / f"{index:02d}_{name}" / file


def test_unstructured_rows_are_honest_and_sparsity_survives_finetune(make_cfg, tmp_path: Path):
    out = tmp_path / "run"
    rows = by_stage(run(with_prune(make_cfg(), method="magnitude", amount=0.7, scope="global"), out))
    train, prune, finetune = rows["train"], rows["prune"], rows["finetune"]
    assert prune["status"] == "ok" and prune["method"] == "magnitude" and prune["amount_of"] == "weights"
    assert prune["achieved_sparsity"] == pytest.approx(0.7, abs=1e-4)  # exactly the asked share of weights
    assert 0.6 < prune["sparsity"] < 0.7  # all parameters: biases are not pruned
    # The dense artifact does not shrink; the verified sparse encoding does.
    assert prune["size_bytes"] == pytest.approx(train["size_bytes"], rel=0.01)
    assert prune["compression_ratio"] == pytest.approx(1.0, abs=0.01)
    assert prune["encode_verified"] is True and prune["encoded_bytes"] < 0.6 * prune["size_bytes"]
    assert prune["encoded_bytes"] < 0.6 * prune["encoded_dense_bytes"]
    # Zeros are still multiplied: no MACs saved, and the row says so instead of inventing a speedup.
    assert prune["macs"] == train["macs"] and prune["macs_reduction"] == 1.0
    assert prune["channels_removed_fraction"] == 0.0 and prune["params_removed_fraction"] == 0.0
    assert prune["speedup_vs_reference"] > 0  # measured, paired; whatever it is, it is reported as measured
    # The zeros survive the finetune stage (KeepSparsity), weight for weight.
    assert finetune["nonzero_params"] == prune["nonzero_params"] < train["nonzero_params"]
    state = decode(stage_file(out, 1, "prune", "weights.cbsp").read_bytes())
    assert not any(k.endswith(("_orig", "_mask")) for k in state)  # masks were made permanent
    assert sum(int(torch.count_nonzero(t)) for t in state.values()) == prune["nonzero_params"]
    layers = read_csv(stage_file(out, 1, "prune", "layers.csv"))
    assert {r["layer"] for r in layers} == {"features.0", "features.3", "classifier.0", "classifier.2",
                                           "classifier.4"}


def test_structured_rows_show_fewer_params_macs_and_bytes(make_cfg, tmp_path: Path):
    rows = by_stage(run(with_prune(make_cfg("model=resnet8", *RGB16, "measure.latency=false"), method="l1_filter",
                                   amount=0.5),
                        tmp_path / "run"))
    train, prune, finetune = rows["train"], rows["prune"], rows["finetune"]
    assert prune["status"] == "ok" and prune["amount_of"] == "channels"
    assert prune["channels_removed_fraction"] == pytest.approx(0.5, abs=0.02)
    assert prune["params"] < 0.35 * train["params"] and prune["sparsity"] == 0.0  # removed, not zeroed
    assert prune["macs"] < 0.35 * train["macs"] and prune["macs_reduction"] > 3.0
    assert prune["effective_macs"] == prune["macs"]
    assert prune["size_bytes"] < 0.4 * train["size_bytes"] and prune["compression_ratio"] > 2.5
    assert finetune["params"] == prune["params"] and finetune["status"] == "ok"


@pytest.mark.parametrize("opts, message", [
    ({"amount": 1.2}, "prune.amount=1.2 is not allowed: a fraction 0 <= amount < 1 of the weights"),
    ({"method": "prune_me"}, "prune.method='prune_me' is not allowed: one of l1_filter, magnitude, random, taylor"),
    ({"method": "magnitude", "amount_of": "channels"}, "prune.amount_of='channels' is not allowed: method "
                                                       "magnitude prunes weights"),
    ({"method": "l1_filter", "schedule": "agp"}, "prune.schedule='agp' is not allowed"),
    ({"scope": "row"}, "prune.scope='row' is not allowed: layer or global"),
    ({"layer_amounts": {"features.0": 1.5}}, "prune.layer_amounts.features.0=1.5 is not allowed"),
    ({"retrain": {"epochs": -1}}, "prune.retrain.epochs=-1 is not allowed"),
    ({"schedule": "agp", "retrain": {"epochs": 0}}, "prune.retrain.epochs=0 is not allowed"),
])
def test_bad_values_fail_before_any_work(make_cfg, tmp_path: Path, opts, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
        run(with_prune(make_cfg(), **opts), tmp_path / "run")
    assert not (tmp_path / "data").exists() and not (tmp_path / "run" / "results.csv").exists()


def test_a_layer_name_that_does_not_exist_fails_before_pruning(make_cfg, tmp_path: Path):
    model = build_model({"name": "lenet5"}, 4, 1, 8)
    with pytest.raises(BadValue, match=r"prune\.ignore='features\.9' is not allowed.*features\.0, features\.3"):
        check_layers(PruneConfig(ignore=["features.9"]), model)
    check_layers(PruneConfig(ignore=["features"], layer_amounts={"classifier.*": 0.5}), model)  # parents, globs
    out = tmp_path / "run"  # the runner checks names on the built model before any training
    with pytest.raises(BadValue, match=r"prune\.layer_amounts='fc9' is not allowed.*classifier\.4"):
        run(with_prune(make_cfg("train.epochs=3"), layer_amounts={"fc9": 0.5}), out)
    assert not (out / "results.csv").exists() and not (out / "stages").exists()


def test_iterative_rounds_prune_then_retrain(make_cfg, tmp_path: Path):
    out = tmp_path / "run"
    rows = by_stage(run(with_prune(make_cfg(*QUICK), method="magnitude", amount=0.6, schedule="iterative", rounds=3,
                                   retrain={"epochs": 1, "batch_size": 16}), out))
    assert rows["prune"]["achieved_sparsity"] == pytest.approx(0.6, abs=1e-3)
    rounds = read_csv(stage_file(out, 1, "prune", "rounds.csv"))
    assert [round(float(r["achieved_sparsity"]), 2) for r in rounds] == [0.2, 0.4, 0.6]
    assert all(r["val_acc"] != "" for r in rounds)
    assert stage_file(out, 1, "prune", "history.csv").is_file()  # the retraining was real training
    assert not list((tmp_path / "cache").rglob("resume*.pt"))  # per-round resume states are cleaned up


def test_iterative_structured_reaches_the_amount_of_original_channels(make_cfg, tmp_path: Path):
    out = tmp_path / "run"
    cfg = with_prune(make_cfg("model=resnet8", "dataset.in_channels=3", "train.epochs=1", *QUICK), method="taylor",
                     amount=0.5, schedule="iterative",
                     rounds=2, retrain={"epochs": 1, "batch_size": 16}, taylor_batches=2, taylor_batch_size=16)
    rows = by_stage(run(cfg, out))
    removed = [float(r["channels_removed_fraction"]) for r in read_csv(stage_file(out, 1, "prune", "rounds.csv"))]
    assert removed[0] == pytest.approx(0.25, abs=0.04) and removed[1] == pytest.approx(0.5, abs=0.02)
    assert rows["prune"]["channels_removed_fraction"] == pytest.approx(0.5, abs=0.02)


def test_agp_prunes_gradually_during_training(make_cfg, tmp_path: Path):
    out = tmp_path / "run"
    cfg = with_prune(make_cfg("train.epochs=1", *QUICK), method="magnitude", amount=0.8, schedule="agp",
                     agp_frequency=2, agp_end=0.8, retrain={"epochs": 2, "batch_size": 16})
    rows = by_stage(run(cfg, out))
    assert rows["prune"]["achieved_sparsity"] == pytest.approx(0.8, abs=1e-3)
    events = read_csv(stage_file(out, 1, "prune", "agp_events.csv"))
    fractions = [float(e["fraction_of_amount"]) for e in events]
    assert len(fractions) >= 4 and fractions[-1] == 1.0 and fractions == sorted(fractions)
    steps = [int(e["step"]) for e in events]
    assert steps == sorted(steps) and steps[-1] < 2 * 14  # 230 samples / 16 = 14 steps per epoch
    gains = [b - a for a, b in zip([0.0, *fractions], fractions, strict=False)]
    assert gains[0] > gains[-2]  # cubic: most of the pruning early, little at the end
    assert rows["prune"]["agp_events"] == len(events)


def test_a_sweep_over_the_amount_trains_the_baseline_once(make_cfg, tmp_path: Path):
    rows = []
    for i, amount in enumerate((0.3, 0.6, 0.9)):
        rows.append(by_stage(run(with_prune(make_cfg(*QUICK), amount=amount), tmp_path / f"job{i}")))
    assert [r["train"]["cache_hit"] for r in rows] == [False, True, True]
    assert [r["prune"]["cache_hit"] for r in rows] == [False, False, False]
    assert [round(r["prune"]["achieved_sparsity"], 2) for r in rows] == [0.3, 0.6, 0.9]
    assert rows[0]["prune"]["encoded_bytes"] > rows[1]["prune"]["encoded_bytes"] > rows[2]["prune"]["encoded_bytes"]
    again = by_stage(run(with_prune(make_cfg(*QUICK), amount=0.6), tmp_path / "again"))
    assert again["prune"]["cache_hit"] is True
    assert again["prune"]["encoded_bytes"] == rows[1]["prune"]["encoded_bytes"]  # recorded fields come back


def test_the_layer_table_lists_every_layer(make_cfg, tmp_path: Path):
    out = tmp_path / "run"
    run(with_prune(make_cfg("model=resnet8", *RGB16, "train.epochs=0", *QUICK), method="l1_filter", amount=0.25,
                   ignore=["layer2"]), out)
    with open(stage_file(out, 1, "prune", "layers.csv")) as f:
        table = {r["layer"]: r for r in csv.DictReader(f)}
    assert table["layer1.0.conv1"]["out_channels"] == "12" and table["layer1.0.conv1"]["out_channels_before"] == "16"
    assert table["layer2.0.conv1"]["out_channels"] == "32"  # ignored: a whole stage by its parent name
    assert table["fc"]["out_channels"] == "4"  # the classifier's outputs are the classes
