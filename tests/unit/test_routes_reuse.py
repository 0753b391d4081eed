"""fp32 routes: a baseline's build (export, compile) is reused within a process for the same weights only."""
from __future__ import annotations

import torch
from torch import nn

from compressbench.measure.routes import built_reference, weights_digest
from compressbench.runtimes import Arch, Eager


def _model(seed: int) -> Eager:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 6 * 6, 3)).eval()
    return Eager(net, Arch({"name": "tiny"}, 3, 1, 8))


def test_same_weights_reuse_the_build_and_other_weights_do_not():
    example = torch.randn(1, 1, 8, 8)
    a, same, other = _model(0), _model(0), _model(1)
    assert weights_digest(a.module) == weights_digest(same.module) != weights_digest(other.module)
    first = built_reference("onnxruntime", a, example)
    assert built_reference("onnxruntime", same, example) is first  # a second job of a sweep: no new export
    assert built_reference("onnxruntime", other, example) is not first
    with torch.no_grad():
        same.module[3].weight[0, 0] += 1.0  # one weight changed in place: another model, another build
    assert built_reference("onnxruntime", same, example) is not first
