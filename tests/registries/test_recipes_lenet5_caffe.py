"""Han et al.'s LeNet-5 (Caffe's, 431K parameters) and the Deep Compression recipe that now uses it."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from compressbench.models import MODELS, build_model
from compressbench.pipeline.plan import validate
from compressbench.stages import STAGES


def test_caffe_lenet5_has_han_et_als_431k_parameters_on_mnist():
    model = MODELS["lenet5_caffe"](10, 1, 28)
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    # Han et al. 2016, Table 3: conv1 0.5K, conv2 25K, ip1 400K, ip2 5K weights
    assert [m.weight.numel() for m in layers] == [500, 25_000, 400_000, 5_000]
    assert [m.weight.shape[0] for m in layers] == [20, 50, 500, 10]
    assert sum(p.numel() for p in model.parameters()) == 431_080
    assert not any(isinstance(m, nn.ReLU) for m in model.features)  # Caffe's prototxt: ReLU after ip1 only
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


@pytest.mark.parametrize("size", [8, 16, 27, 28, 32])
def test_caffe_lenet5_builds_for_small_and_cifar_images(size: int):
    model = MODELS["lenet5_caffe"](4, 3, size)
    assert model(torch.randn(2, 3, size, size)).shape == (2, 4)


def test_lenet5_deep_compression_prunes_han_et_als_model(make_cfg):
    cfg = make_cfg("+experiment=lenet5_deep_compression", fast=False)
    assert cfg.model.name == "lenet5_caffe"
    plan = validate(cfg)
    model = build_model(cfg.model, 10, 1, 28)
    STAGES.get("prune").check_model(plan.stages["prune"], model)
    layers = [n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    # Han et al.'s Table 3 keeps 66% / 12% / 8% / 19% of conv1 / conv2 / ip1 / ip2: every layer has its own rate
    kept = {n: round(1 - a, 2) for n, a in plan.stages["prune"].layer_amounts.items()}
    assert kept == dict(zip(layers, [0.66, 0.12, 0.08, 0.19], strict=True))
