"""Every PRUNE_CRITERIA entry prunes by its unit, and a new criterion is one decorated function."""
from __future__ import annotations

import pytest
import torch

from compressbench.models import build_model
from compressbench.models.counting import param_counts
from compressbench.stages.prune import PruneConfig
from compressbench.techniques.pruning import structured, unstructured
from compressbench.techniques.pruning.criteria import PRUNE_CRITERIA, register
from compressbench.techniques.pruning.layers import classifier_name, prunable_layers


def tiny() -> tuple[torch.nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    return build_model({"name": "resnet8"}, 4, 3, 8).eval(), torch.randn(4, 3, 8, 8)


@pytest.mark.parametrize("name", PRUNE_CRITERIA.names())
def test_every_criterion_prunes_its_unit(name: str):
    model, x = tiny()
    criterion = PRUNE_CRITERIA.get(name)
    cfg = PruneConfig(method=name, amount=0.5)
    assert cfg.scope == criterion.scope and cfg.amount_of == criterion.unit  # the one source of both defaults
    before = param_counts(model)
    if criterion.unit == "weights":
        unstructured.prune_weights_(model, cfg.spec, method=name, generator=torch.Generator().manual_seed(0))
        total, nonzero = param_counts(model)
        assert total == before[0] and nonzero < 0.75 * before[1]
    else:
        batches = [(x, torch.tensor([0, 1, 2, 3]))]
        structured.prune_channels_(model, cfg.spec, x[:1], classifier_name(model, x[:1]), method=name,
                                   batches=batches)
        assert param_counts(model)[0] < 0.75 * before[0]  # channels physically removed
        assert model(x).shape == (4, 4)


@pytest.fixture
def l2_criterion():
    """An L2-norm filter criterion, registered for one test and removed after it (other tests list the names)."""
    @register("l2_filter_test", "channels", "layer")
    def l2_filter(group):
        score = torch.zeros(group.channels)
        for module, is_out, idxs, roots in group.items():
            if is_out and isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
                w = module.weight.detach()[idxs].flatten(1).pow(2).sum(1).float()
                score.scatter_add_(0, torch.tensor(roots), w)
        return score.sqrt()

    yield
    PRUNE_CRITERIA._entries.pop("l2_filter_test")


def test_a_new_structured_criterion_is_one_function(l2_criterion):
    model, x = tiny()
    cfg = PruneConfig(method="l2_filter_test", amount=0.5)
    assert cfg.amount_of == "channels" and cfg.scope == "layer"
    widths = {n: m.weight.shape[0] for n, m in prunable_layers(model).items()}
    structured.prune_channels_(model, cfg.spec, x[:1], classifier_name(model, x[:1]), method="l2_filter_test")
    after = {n: m.weight.shape[0] for n, m in prunable_layers(model).items()}
    assert any(after[n] < widths[n] for n in widths)
