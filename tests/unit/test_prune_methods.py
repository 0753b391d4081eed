"""Every pruning method on every model family, on tiny inputs: exact amounts, real removal, consistency."""
from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from compressbench.adapters.torch_pruning import channel_groups
from compressbench.models import MODELS, build_model
from compressbench.models.counting import count_macs
from compressbench.runtimes import Arch, Eager
from compressbench.techniques.pruning.layers import Spec, classifier_name, prunable_layers
from compressbench.techniques.pruning.schedules import GradualPruning, cubic
from compressbench.techniques.pruning.structured import ignored_modules, prune_channels_
from compressbench.techniques.pruning.unstructured import prune_weights_

# One model of each family, for the costlier checks (every registered model runs the cheap ones).
FAMILIES = {"lenet": "lenet5", "mlp": "lenet300_100", "alexnet": "alexnet", "vgg": "vgg16",
            "cifar_resnet": "resnet8", "torchvision_resnet": "resnet50", "densenet": "densenet121"}
CLASSIFIERS = {"lenet5": "classifier.4", "lenet300_100": "classifier.4", "alexnet": "classifier.6",
               "vgg16": "classifier.3", "resnet8": "fc", "resnet50": "fc", "densenet121": "classifier"}


def tiny(name: str) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    return build_model({"name": name}, 4, 3, 8).eval(), torch.randn(2, 3, 8, 8)


def batches(x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(x, torch.tensor([0, 1]))]


@pytest.mark.parametrize("name, method", [
    *(pytest.param(n, "magnitude", marks=pytest.mark.slow) if n == "resnet50" else (n, "magnitude")
      for n in MODELS.names()),  # resnet34 stands for the torchvision ResNets; 23M weights are slow here
    *((n, "random") for n in ("lenet5", "alexnet", "resnet8"))])
def test_unstructured_zeros_exactly_the_amount_of_every_layer(name, method):
    model, x = tiny(name)
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    prune_weights_(model, Spec(0.6), method=method, generator=torch.Generator().manual_seed(0))
    for layer, m in prunable_layers(model).items():
        zeros = int((m.weight == 0).sum())
        assert zeros == round(0.6 * m.weight.numel()), layer
    assert {k: v.shape for k, v in model.state_dict().items()} == shapes  # nothing removed
    assert not any(k.endswith(("_orig", "_mask")) for k in model.state_dict())  # no reparametrisation left
    assert torch.isfinite(model(x)).all()


@pytest.mark.parametrize("name", ["lenet5", "resnet8", "vgg16"])
def test_global_scope_ranks_all_layers_together(name):
    model, _ = tiny(name)
    prune_weights_(model, Spec(0.7, scope="global"))
    weights = [m.weight for m in prunable_layers(model).values()]
    total = sum(w.numel() for w in weights)
    assert sum(int((w == 0).sum()) for w in weights) == round(0.7 * total)
    per_layer = [float((w == 0).float().mean()) for w in weights]
    assert max(per_layer) - min(per_layer) > 0.05  # layers end up unevenly sparse: one ranking, not many


def test_magnitude_keeps_the_largest_weights_and_random_does_not():
    model, _ = tiny("lenet300_100")
    w = model.classifier[0].weight.detach().clone()
    prune_weights_(model, Spec(0.5))
    kept = model.classifier[0].weight != 0
    assert w.abs()[kept].min() >= w.abs()[~kept].max()
    other, _ = tiny("lenet300_100")
    prune_weights_(other, Spec(0.5), method="random", generator=torch.Generator().manual_seed(1))
    assert not torch.equal(other.classifier[0].weight != 0, kept)


@pytest.mark.parametrize("method", ["magnitude", "random"])
def test_pruning_again_only_adds_zeros(method):
    model, _ = tiny("lenet5")
    gen = torch.Generator().manual_seed(0)
    prune_weights_(model, Spec(0.6, layer_amounts={"classifier.4": 0.2}), 0.5, method, gen)
    first = {n: m.weight == 0 for n, m in prunable_layers(model).items()}
    prune_weights_(model, Spec(0.6, layer_amounts={"classifier.4": 0.2}), 1.0, method, gen)
    for n, m in prunable_layers(model).items():
        assert bool((m.weight[first[n]] == 0).all()), n  # the earlier zeros are still zero
    assert float((model.classifier[4].weight == 0).float().mean()) == pytest.approx(0.2, abs=0.01)


# The two deepest graphs take torch-pruning many seconds; their families run l1_filter in the reload test.
SLOW_GRAPHS = {"densenet121", "resnet110"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_GRAPHS else n
                                  for n in MODELS.names()])
def test_l1_filter_removes_channels_physically_on_every_model(name):
    model, x = tiny(name)
    classifier = classifier_name(model, x[:1])
    params0 = sum(p.numel() for p in model.parameters())
    macs0 = count_macs(model, x[:1])[0]
    results = prune_channels_(model, Spec(0.5), x[:1], classifier)
    assert results and all(r.after == max(1, r.before // 2) for r in results)  # int(c * (1 - p)) are kept
    assert sum(p.numel() for p in model.parameters()) < 0.6 * params0
    assert count_macs(model, x[:1])[0] < 0.6 * macs0
    out = model(x)
    assert out.shape == (2, 4) and torch.isfinite(out).all()
    assert prunable_layers(model)[classifier].weight.shape[0] == 4  # the classes stay
    assert all(m.weight.shape[0] >= 1 for m in prunable_layers(model).values())


@pytest.mark.parametrize("family, name", FAMILIES.items())
def test_taylor_removes_channels_on_every_family(family, name):
    model, x = tiny(name)
    classifier = classifier_name(model, x[:1])
    assert classifier == CLASSIFIERS[name]
    params0 = sum(p.numel() for p in model.parameters())
    results = prune_channels_(model, Spec(0.4), x[:1], classifier, method="taylor", batches=batches(x))
    assert all(r.after == r.before * 6 // 10 for r in results if r.before > 2)  # int(c * (1 - p)) are kept
    assert sum(p.numel() for p in model.parameters()) < params0 and model(x).shape == (2, 4)
    assert all(p.grad is None for p in model.parameters())  # scoring leaves no gradients behind


def test_each_criterion_ranks_by_what_it_claims():
    # l1_filter: the filter with the smallest L1 norm goes first.
    model, x = tiny("lenet5")
    with torch.no_grad():
        model.features[0].weight[2] *= 1e-3
    smallest = float(model.features[0].weight[2].detach().abs().sum())
    prune_channels_(model, Spec(0.0, layer_amounts={"features.0": 1 / 6}), x[:1], "classifier.4")
    assert model.features[0].weight.shape[0] == 5
    assert float(model.features[0].weight.detach().abs().flatten(1).sum(1).min()) > smallest
    # taylor: a hidden unit that nothing reads changes no loss, so it goes first despite the biggest weights
    # (which l1_filter would keep).
    model, _ = tiny("lenet300_100")
    x = torch.randn(64, 3, 8, 8)
    with torch.no_grad():
        model.classifier[2].weight[:, 7] = 0
        model.classifier[0].weight[7] *= 100
    kept = torch.cat([model.classifier[0].weight[:7], model.classifier[0].weight[8:]]).clone()
    prune_channels_(model, Spec(0.0, layer_amounts={"classifier.0": 1 / 300}), x[:1], "classifier.4",
                    method="taylor", batches=[(x, torch.randint(0, 4, (64,)))])
    assert torch.equal(model.classifier[0].weight, kept)


@pytest.mark.parametrize("name", ["lenet5", "resnet8", "vgg16"])
def test_at_least_one_channel_always_survives(name):
    model, x = tiny(name)
    prune_channels_(model, Spec(0.99), x[:1], classifier_name(model, x[:1]))
    assert all(m.weight.shape[0] >= 1 for m in prunable_layers(model).values())
    assert model(x).shape == (2, 4)


def test_global_structured_scope_removes_the_amount_overall():
    model, x = tiny("vgg16")
    before = {n: m.weight.shape[0] for n, m in prunable_layers(model).items() if n != "classifier.3"}
    prune_channels_(model, Spec(0.5, scope="global"), x[:1], "classifier.3")
    after = {n: prunable_layers(model)[n].weight.shape[0] for n in before}
    assert sum(after.values()) == pytest.approx(0.5 * sum(before.values()), abs=2)
    assert len({round(after[n] / before[n], 2) for n in before}) > 1  # layers lose different shares


def test_per_layer_amounts_and_ignored_layers_follow_li_et_al():
    model, x = tiny("resnet20")  # pruned-B's scheme on ResNet-20: first convs only, per stage, some skipped
    spec = Spec(0.0, {"layer1.*.conv1": 0.6, "layer2.*.conv1": 0.3, "layer3": 0.1}, ("layer2.0.conv1",))
    prune_channels_(model, spec, x[:1], "fc")
    width = {n: m.weight.shape[0] for n, m in prunable_layers(model).items()}
    assert width["layer1.1.conv1"] == 6 and width["layer2.1.conv1"] == 22
    assert width["layer2.0.conv1"] == 32  # ignored
    # "layer3" reaches its residual group; int(64 * 0.9) = 57 kept, Li et al.'s rounding
    assert width["layer3.1.conv1"] == 57 and width["layer3.1.conv2"] == 57
    assert width["conv1"] == 16 and width["layer2.1.conv2"] == 32  # residual sums of stages 1-2 untouched


@pytest.mark.parametrize("family, name", FAMILIES.items())
def test_zeroing_a_group_gives_the_outputs_of_removing_it(family, name):
    """What the sensitivity scan measures (zeroed channels) is what pruning would give (removed channels)."""
    model, x = tiny(name)
    classifier = classifier_name(model, x[:1])
    groups = channel_groups(model, x[:1], ignored_modules(model, (), classifier))
    for g in groups[len(groups) // 2:][:1]:  # a group inside the network (its stem's is the easy case)
        idxs = torch.argsort(g.l1(), stable=True)[: g.channels // 2].tolist()
        with g.zeroed(idxs), torch.no_grad():
            soft = model(x)
        removed = copy.deepcopy(model)
        spec = Spec(0.0, layer_amounts={g.layers[0]: (g.channels // 2) / g.channels})
        prune_channels_(removed, spec, x[:1], classifier)
        with torch.no_grad():
            torch.testing.assert_close(soft, removed(x), rtol=1e-4, atol=1e-5)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with groups[0].zeroed([0]):
        pass
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())  # restored exactly


RELOAD = """
import json, sys, torch
from pathlib import Path
from compressbench.runtimes import Eager
torch.set_num_threads(1)
for folder in sys.argv[1:]:
    folder = Path(folder)
    model = Eager.load(folder, json.loads((folder / "meta.json").read_text()), torch.device("cpu")).module
    saved = torch.load(folder / "check.pt", weights_only=True)
    with torch.no_grad():
        logits = model.eval()(saved["x"])
    assert torch.equal(logits, saved["logits"]), folder
print("identical")
"""


def test_pruned_models_rebuild_in_a_fresh_process_with_identical_logits(tmp_path: Path):
    """Saved as architecture + tensors (nothing pickled whole), rebuilt from a fresh model config."""
    torch.set_num_threads(1)
    folders = []
    for name in ("resnet8", "densenet121", "vgg16"):  # residual adds, concat, plain
        model, x = tiny(name)
        prune_channels_(model, Spec(0.5), x[:1], classifier_name(model, x[:1]))
        with torch.no_grad():
            logits = model(x)
        folder = tmp_path / name
        meta = Eager(model, Arch({"name": name}, 4, 3, 8)).save(folder)
        (folder / "meta.json").write_text(json.dumps(meta))
        torch.save({"x": x, "logits": logits}, folder / "check.pt")
        folders.append(str(folder))
    proc = subprocess.run([sys.executable, "-c", RELOAD, *folders], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "identical" in proc.stdout, proc.stderr[-2000:]


def test_the_agp_schedule_is_zhu_and_gupta_cubic():
    assert cubic(0) == 0 and cubic(1) == 1 and cubic(2) == 1 and cubic(-1) == 0
    points = [cubic(p / 10) for p in range(11)]
    steps = [b - a for a, b in zip(points, points[1:], strict=False)]
    assert points == sorted(points) and steps == sorted(steps, reverse=True)  # fast first, then slower
    assert cubic(0.5) == pytest.approx(0.875)


def test_gradual_pruning_sets_its_masks_up_at_once_when_training_resumes_mid_way():
    model, _ = tiny("lenet5")
    layers = prunable_layers(model)

    def prune(m, fraction):
        return prune_weights_(m, Spec(0.5), fraction)

    fresh = GradualPruning(prune, layers, 0.0, 1.0, frequency=10)
    fresh.on_train_begin(model, steps_per_epoch=10, epochs=4)
    fresh.after_step(model, 0)
    assert fresh.events == []  # progress 0: nothing to prune yet; the next event is 10 steps on
    resumed = GradualPruning(prune, layers, 0.0, 1.0, frequency=10)
    resumed.on_train_begin(model, steps_per_epoch=10, epochs=4)
    resumed.after_step(model, 25)  # engine.fit resumed at epoch 3
    assert resumed.events and resumed.events[0][0] == 25 and resumed.masks


def test_ranks_agree_on_the_scores_they_are_given():
    """Under torchrun the stage passes ``agree=broadcast``: whatever it returns decides what is removed."""
    model, x = tiny("lenet5")
    norms = model.features[0].weight.detach().abs().flatten(1).sum(1)
    prune_channels_(model, Spec(0.0, layer_amounts={"features.0": 0.5}), x[:1], "classifier.4",
                    agree=lambda scores: [-s for s in scores])  # inverted: the strongest filters go
    kept = model.features[0].weight.detach().abs().flatten(1).sum(1)
    assert torch.allclose(kept.sort().values, norms.sort().values[:3])
