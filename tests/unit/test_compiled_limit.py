"""The compiled fp32 route compiles every model of a sweep, not just the first 8 of each class."""
from __future__ import annotations

import torch
from torch import nn

from compressbench.runtimes.compiled import compiled


def test_the_ninth_model_of_a_class_is_still_compiled(monkeypatch):
    import torch._dynamo.config as dynamo_config
    from torch._dynamo.utils import counters

    # dynamo's limit (8) lowered to 2, so 4 compiles show what the 9th model of a sweep would meet
    monkeypatch.setattr(dynamo_config, "recompile_limit", 2)
    torch._dynamo.reset()
    x = torch.randn(2, 8)
    for i in range(4):
        model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
        graphs = counters["stats"]["unique_graphs"]
        with torch.no_grad():
            y = compiled(model)(x)
            assert torch.allclose(y, model(x), atol=1e-5)
        assert counters["stats"]["unique_graphs"] > graphs, f"model {i} ran eager: dynamo's recompile limit"
