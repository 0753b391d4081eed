"""Low-rank factorization: exact at full rank, rank choice, every model family, the stage in a chain, bad input."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from compressbench.config import ConfigError
from compressbench.models import MODELS, build_model
from compressbench.models.counting import count_macs
from compressbench.pipeline.runner import run
from compressbench.results import read_csv
from compressbench.techniques.deepcompression.lowrank import choose_rank, factorize_, factorize_layer, svd

QUICK = ["measure.latency=false", "runtime.progress=false"]
BIG = {"resnet50", "resnet110", "resnet34", "vgg16", "densenet121"}  # seconds to a minute each; -m slow


@pytest.mark.parametrize("layer, scheme, rank", [
    (nn.Linear(12, 7), "linear", 7),
    (nn.Conv2d(3, 8, (3, 5), stride=(2, 1), padding=(1, 2), dilation=(1, 2)), "channel", 8),
    (nn.Conv2d(3, 8, (3, 5), stride=(2, 1), padding=(1, 2), dilation=(1, 2)), "spatial", 9),
    (nn.Conv2d(4, 6, 3, padding="same", bias=False), "spatial", 12),
    (nn.Conv2d(4, 6, 1), "channel", 4),
])
def test_full_rank_factorization_is_the_layer(layer: nn.Module, scheme: str, rank: int):
    torch.manual_seed(0)
    x = torch.randn(2, 12) if isinstance(layer, nn.Linear) else torch.randn(2, layer.in_channels, 11, 12)
    pair = factorize_layer(layer, scheme, rank)
    with torch.no_grad():
        assert torch.allclose(pair(x), layer(x), atol=1e-5)


def test_svd_and_rank_choice():
    torch.manual_seed(0)
    m = torch.randn(6, 20, dtype=torch.float64)
    u, s, vh = svd(m)
    assert torch.allclose(u * s @ vh, m) and torch.allclose(s, torch.linalg.svdvals(m))
    s = torch.tensor([3.0, 2.0, 1.0, 0.0])
    assert choose_rank(s, 4, 10, "energy", 0.9, 0, 0) == 2  # 13/14 >= 0.9 > 9/14
    assert choose_rank(s, 4, 10, "energy", 1.0, 0, 0) == 3
    assert choose_rank(s, 4, 10, "ratio", 0, 0.5, 0) == 1  # 0.5 * 40 / 14 params per rank
    assert choose_rank(s, 4, 10, "rank", 0, 0, 9) == 4  # at most the layer's rank


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in BIG else n
                                  for n in MODELS.names()])
@pytest.mark.parametrize("scheme", ["channel", "spatial"])
def test_every_model_gets_fewer_params_and_macs(name: str, scheme: str):
    torch.manual_seed(0)
    model = build_model({"name": name}, 4, 3, 8).eval()
    x = torch.randn(2, 3, 8, 8)
    params, macs = sum(p.numel() for p in model.parameters()), count_macs(model, x[:1])[0]
    decisions = factorize_(model, method="ratio", ratio=0.3, conv_scheme=scheme)
    done = [d for d in decisions if d.status == "factorized"]
    assert done and all(d.params_after < d.params_before for d in done)
    assert all(d.params_after == d.params_before for d in decisions if d.status != "factorized")
    assert sum(p.numel() for p in model.parameters()) < params and count_macs(model, x[:1])[0] < macs
    assert model(x).shape == (2, 4)


def test_energy_keeps_what_it_promises_and_skips_what_would_grow():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 3))
    with torch.no_grad():  # a nearly rank-4 first layer
        model[0].weight.copy_(torch.randn(32, 4) @ torch.randn(4, 64) + 1e-3 * torch.randn(32, 64))
    decisions = {d.layer: d for d in factorize_(model, method="energy", energy=0.99)}
    assert decisions["0"].rank == 4 and decisions["0"].energy_kept >= 0.99
    assert decisions["2"].status.startswith("skipped") and "params" in decisions["2"].status  # 3 outputs
    assert isinstance(model[0], nn.Sequential) and isinstance(model[2], nn.Linear)


def with_lowrank(cfg, **opts):
    OmegaConf.set_struct(cfg, False)
    cfg.lowrank = {"stage": "lowrank", **opts}
    cfg.chain = ["train", "lowrank", "finetune"]
    return cfg


def test_stage_in_a_chain_shrinks_params_and_macs_and_lists_skipped_layers(make_cfg, tmp_path: Path):
    out = tmp_path / "run"
    rows = {r["stage"]: r for r in run(with_lowrank(make_cfg("model=resnet8", "dataset.in_channels=3", *QUICK),
                                                    method="ratio", ratio=0.4, ignore=["conv1"]), out)}
    train, low, finetune = rows["train"], rows["lowrank"], rows["finetune"]
    assert low["status"] == finetune["status"] == "ok"
    assert low["params"] < 0.6 * train["params"] and low["macs"] < 0.6 * train["macs"]
    assert low["macs_reduction"] == pytest.approx(train["macs"] / low["macs"])
    assert low["size_bytes"] < 0.7 * train["size_bytes"] and finetune["params"] == low["params"]
    assert "conv1" in low["lowrank_skipped"].split()
    layers = {r["layer"]: r for r in read_csv(out / "stages/01_lowrank/layers.csv")}
    assert layers["conv1"]["status"] == "skipped: ignored" and layers["layer1.0.conv1"]["status"] == "factorized"


@pytest.mark.parametrize("opts, message", [
    ({"method": "tucker"}, "lowrank.method='tucker' is not allowed: one of energy, ratio, rank"),
    ({"energy": 0.0}, "lowrank.energy=0.0 is not allowed"),
    ({"ratio": 1.0}, "lowrank.ratio=1.0 is not allowed"),
    ({"conv_scheme": "tucker2"}, "lowrank.conv_scheme='tucker2' is not allowed: one of channel, spatial"),
    ({"layer_ranks": {"classifier.2": 85}}, "lowrank.layer_ranks.classifier.2=85 is not allowed: at most 84 for "
                                            "layer classifier.2 \\(84x120"),
    ({"layer_ranks": {"features.0": 7}}, "lowrank.layer_ranks.features.0=7 is not allowed: at most 6"),
    ({"layer_ranks": {"fc9": 2}}, "lowrank.layer_ranks='fc9' is not allowed: .*its layers: features.0"),
])
def test_bad_values_fail_before_any_work(make_cfg, tmp_path: Path, opts: dict, message: str):
    with pytest.raises(ConfigError, match=message):
        run(with_lowrank(make_cfg(*QUICK), **opts), tmp_path / "run")
    assert not (tmp_path / "cache").exists()
