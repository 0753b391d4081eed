"""export compares exported files with the model's CPU logits, from a copy when the model lives elsewhere."""
from __future__ import annotations

import torch

from compressbench.models import build_model
from compressbench.runtimes import Arch, Eager
from compressbench.stages.export import on_cpu


def test_a_model_off_the_cpu_is_compared_through_a_cpu_copy(monkeypatch):
    arch = Arch({"name": "lenet5"}, 4, 1, 8)
    artifact = Eager(build_model(arch.model, 4, 1, 8), arch).eval()
    assert on_cpu(artifact) is artifact  # already there: nothing copied
    monkeypatch.setattr(Eager, "device", property(lambda self: torch.device("cuda")), raising=True)
    copy = on_cpu(artifact)
    assert copy is not artifact and next(copy.module.parameters()).device.type == "cpu"
    x = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(copy(x), artifact(x))
