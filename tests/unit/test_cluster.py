"""Weight sharing: exact 1-D k-means, the cluster stage on every model family, and shared values surviving training."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from compressbench.config import ConfigError
from compressbench.models import MODELS, build_model
from compressbench.pipeline.plan import validate
from compressbench.pipeline.runner import run
from compressbench.results import read_csv
from compressbench.runtimes import Arch, Eager
from compressbench.stages.cluster import ClusterConfig
from compressbench.techniques.deepcompression import sharing
from compressbench.techniques.deepcompression.kmeans import INITS, assign, kmeans_1d
from compressbench.techniques.pruning.layers import Spec, prunable_layers
from compressbench.techniques.pruning.unstructured import prune_weights_

BIG = {"resnet50", "resnet110", "resnet34", "vgg16", "densenet121"}  # resnet20/56 stand for the residual nets; -m slow
QUICK = ["measure.latency=false", "runtime.progress=false"]


def sse(x: torch.Tensor, centroids: torch.Tensor, labels: torch.Tensor) -> float:
    return float(((x.double() - centroids.double()[labels]) ** 2).sum())


@pytest.mark.parametrize("init", INITS)
def test_kmeans_converges_to_a_lloyd_fixed_point(init: str):
    g = torch.Generator().manual_seed(0)
    # float64 in, float64 out: a float32 round trip of the centroids could move a point sitting on a midpoint.
    x = torch.cat([torch.randn(3000, generator=g) * 0.1, torch.randn(500, generator=g) * 0.5 + 1.0]).double()
    result = kmeans_1d(x, 16, init=init, iters=200, generator=torch.Generator().manual_seed(1))
    c, labels = result.centroids, result.labels
    assert 1 <= len(c) <= 16 and bool((c[1:] > c[:-1]).all())  # ascending, no duplicates, empties dropped
    assert torch.equal(labels, assign(x, c))  # every point at its nearest centroid
    means = torch.zeros(len(c), dtype=torch.float64).index_add_(0, labels, x) / torch.bincount(labels)
    assert torch.allclose(means, c, rtol=0, atol=1e-12)  # every centroid the mean of its members
    assert set(labels.tolist()) == set(range(len(c)))


def test_lloyd_improves_on_its_initialisation_and_linear_init_is_linear():
    x = torch.randn(5000) ** 3
    one = kmeans_1d(x, 8, init="linear", iters=1)
    many = kmeans_1d(x, 8, init="linear", iters=100)
    assert sse(x, many.centroids, many.labels) < sse(x, one.centroids, one.labels)
    start = kmeans_1d(x, 8, init="linear", iters=1)  # one update of linspace(min, max): extremes stay in range
    assert float(start.centroids.min()) >= float(x.min()) and float(start.centroids.max()) <= float(x.max())


def test_kmeans_is_exact_with_few_distinct_values_and_seeded():
    x = torch.tensor([0.5, -1.0, 0.5, 2.0, -1.0])
    result = kmeans_1d(x, 4)
    assert torch.equal(result.centroids[result.labels], x)
    y = torch.randn(1000)
    a = kmeans_1d(y, 8, init="kmeans++", generator=torch.Generator().manual_seed(3))
    b = kmeans_1d(y, 8, init="kmeans++", generator=torch.Generator().manual_seed(3))
    assert torch.equal(a.centroids, b.centroids)


def pruned(name: str, amount: float = 0.6) -> nn.Module:
    torch.manual_seed(0)
    model = build_model({"name": name}, 4, 3, 8).eval()
    prune_weights_(model, Spec(amount), 1.0, "magnitude", torch.Generator().manual_seed(0))
    return model


def masks(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: m.weight.detach() != 0 for n, m in prunable_layers(model).items()}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in BIG else n
                                  for n in MODELS.names()])
def test_clustering_every_model_keeps_zeros_and_at_most_2_to_the_bits_values(name: str):
    model = pruned(name)
    before = masks(model)
    cfg = ClusterConfig(conv_bits=3, linear_bits=2, iters=5)
    layers = sharing.cluster_model_(model, cfg.bits_for, iters=cfg.iters)
    assert {r.layer for r in layers} == set(before)
    after = masks(model)
    assert all(torch.equal(before[n], after[n]) for n in before)  # the same weights are zero: sparsity unchanged
    for layer, count in sharing.distinct_values(model).items():
        limit = 2**2 if isinstance(model.get_submodule(layer), nn.Linear) else 2**3
        assert 1 <= count <= limit, layer
    assert model(torch.randn(2, 3, 8, 8)).shape == (2, 4)


def test_shared_values_move_by_their_members_mean_or_summed_update():
    """One plain SGD step: each shared value moves by -lr × the mean (or sum, Han's eq. 3) of its members' grads."""
    for update in ("mean", "sum"):
        layer = nn.Linear(4, 1, bias=False)
        sharing.share_(layer, torch.tensor([-1.0, 1.0]), torch.tensor([0, 1, 1, -1]), update)
        assert layer.weight.tolist() == [[-1.0, 1.0, 1.0, 0.0]]
        opt = torch.optim.SGD(layer.parameters(), lr=0.1)
        layer(torch.tensor([[1.0, 2.0, 4.0, 8.0]])).sum().backward()  # d out / d w = the input
        opt.step()
        layer(torch.zeros(1, 4))  # the next forward projects
        moved = 0.1 * (2.0 + 4.0) / (2 if update == "mean" else 1)
        assert layer.weight.detach()[0].tolist() == pytest.approx([-1.1, 1 - moved, 1 - moved, 0.0])


def test_pruning_after_clustering_leaves_the_pruned_weights_at_zero():
    """A prune after cluster (or a pruning schedule in a later finetune) zeroes members: they leave their
    cluster instead of counting as an update of -value that the next forward would undo."""
    model = pruned("lenet5", amount=0.3)
    sharing.cluster_model_(model, ClusterConfig(conv_bits=3, linear_bits=3).bits_for)
    codebooks = {n: getattr(m, sharing.CODEBOOK).clone() for n, m in sharing.shared_layers(model).items()}
    prune_weights_(model, Spec(0.7), 1.0, "magnitude", torch.Generator().manual_seed(0))
    zeros = {n: ~keep for n, keep in masks(model).items()}
    model(torch.randn(2, 3, 8, 8))  # the forward that projects
    assert all(torch.equal(~masks(model)[n], zeros[n]) for n in zeros)
    for name, m in sharing.shared_layers(model).items():  # survivors did not move: nothing was trained
        assert torch.equal(getattr(m, sharing.CODEBOOK), codebooks[name]), name


@torch.no_grad()
def masked_projection(w: torch.Tensor, clusters: torch.Tensor, codebook: torch.Tensor, update: str) -> None:
    """The projection written plainly over the full-size map (what project_ did before it kept a compact one)."""
    flat = w.detach().reshape(-1)
    pruned = (clusters >= 0) & (flat == 0) & (codebook[clusters.clamp_min(0).long()] != 0)
    clusters[pruned] = -1
    live = clusters >= 0
    index, members = clusters[live].long(), flat[live]
    counts = torch.bincount(index, minlength=len(codebook)).clamp_min(1).to(codebook.dtype)
    step = torch.zeros_like(codebook).index_add_(0, index, members - codebook[index])
    codebook.add_(step if update == "sum" else step / counts)
    new = torch.zeros_like(flat)
    new[live] = codebook[index]
    w.copy_(new.view(w.shape))


@pytest.mark.parametrize("update", ["mean", "sum"])
def test_the_cached_projection_equals_the_plain_one_through_training_and_a_later_prune(update: str):
    """Bit for bit, over optimizer steps on a channels-last conv and a linear layer, with members pruned midway
    (the compact map is derived again), after a deepcopy (which must not reuse the original's map) and after the
    map is replaced by another tensor at the same address."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Flatten(), nn.Linear(8 * 6 * 6, 5)).to(memory_format=torch.channels_last)
    g = torch.Generator().manual_seed(1)
    for m in (model[0], model[2]):
        clusters = torch.randint(-1, 4, (m.weight.numel(),), generator=g, dtype=torch.int32)
        sharing.share_(m, torch.linspace(-0.2, 0.2, 4), clusters, update)
    plain = {i: (getattr(model[i], sharing.CLUSTERS).clone(), getattr(model[i], sharing.CODEBOOK).clone())
             for i in (0, 2)}
    dead = int((plain[2][0] == -1).sum())
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3)
    x = torch.randn(4, 3, 8, 8).to(memory_format=torch.channels_last)
    views = []  # the linear layer's compact map after each projection
    for step in range(6):
        if step == 3:  # a prune after cluster: some members set to zero
            with torch.no_grad():
                model[2].weight.view(-1)[::7] = 0
                model = copy.deepcopy(model) if update == "mean" else model
            opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3)
        if step == 4:  # the map replaced by another tensor object over the same memory (as a move to a device
            # and back can give): nothing cached for the old object may be taken for it
            model[2].register_buffer(sharing.CLUSTERS, torch.from_dlpack(getattr(model[2], sharing.CLUSTERS)),
                                     persistent=False)
        before = {i: model[i].weight.detach().clone() for i in (0, 2)}
        model(x)  # the hooks project
        for i in (0, 2):
            w, (clusters, codebook) = before[i], plain[i]
            masked_projection(w, clusters, codebook, update)
            assert torch.equal(model[i].weight.detach(), w), (step, i)
            assert torch.equal(getattr(model[i], sharing.CLUSTERS), clusters), (step, i)
            assert torch.equal(getattr(model[i], sharing.CODEBOOK), codebook), (step, i)
        views.append(next(h for h in model[2]._forward_pre_hooks.values() if isinstance(h, sharing.ProjectShared)).live)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), torch.randint(0, 5, (4,))).backward()
        opt.step()
    assert int((getattr(model[2], sharing.CLUSTERS) == -1).sum()) > dead  # the prune did take members out
    # Kept while the map stands; described anew by the prune (or dropped by the deepcopy) and by the
    # replacement, then kept.
    assert views[1] is views[0] and views[2] is views[0]
    assert views[3] is not views[0] and views[4] is not views[3] and views[5] is views[4]


def test_update_sum_is_refused_where_it_would_multiply_weight_decay(make_cfg, tmp_path: Path):
    cfg = with_cluster(make_cfg(*QUICK), update="sum")
    with pytest.raises(ConfigError, match="cluster.update='sum' is not allowed: mean here, since finetune trains "
                                          "with optimizer=sgd, weight_decay=0.0005"):
        run(cfg, tmp_path / "run")
    cfg.finetune.weight_decay = 0.0
    validate(cfg)  # plain SGD without decay: Han's eq. 3 exactly


def _ddp_step(rank: int, store: str, out: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    model = pruned("lenet5")
    sharing.cluster_model_(model, ClusterConfig(conv_bits=3, linear_bits=2).bits_for)
    ddp = nn.parallel.DistributedDataParallel(model)  # broadcasts every buffer, the cluster indices included
    opt = torch.optim.SGD(ddp.parameters(), lr=0.05, momentum=0.9)
    torch.manual_seed(rank)  # each rank its own batch
    for _ in range(2):
        opt.zero_grad()
        nn.functional.cross_entropy(ddp(torch.randn(8, 3, 8, 8)), torch.randint(0, 4, (8,))).backward()
        opt.step()
    sharing.sync_(model)
    torch.save({"state": model.state_dict(), "distinct": sharing.distinct_values(model)}, f"{out}{rank}.pt")
    dist.destroy_process_group()


def test_a_clustered_model_trains_data_parallel(tmp_path: Path):
    import torch.multiprocessing as mp

    mp.spawn(_ddp_step, args=(str(tmp_path / "store"), str(tmp_path / "rank")), nprocs=2)
    a, b = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert all(torch.equal(a["state"][k], b["state"][k]) for k in a["state"])  # the ranks agree
    assert max(a["distinct"].values()) <= 8 and a["state"] != {}


def test_sharing_survives_deepcopy_saving_and_checkpoint_loads(tmp_path):
    model = pruned("lenet5")
    sharing.cluster_model_(model, ClusterConfig(conv_bits=2, linear_bits=2).bits_for)
    assert set(model.state_dict()) == set(build_model({"name": "lenet5"}, 4, 3, 8).state_dict())  # plain keys
    eager = Eager(model, Arch({"name": "lenet5"}, 4, 3, 8))
    saved = Eager.load(tmp_path, eager.save(tmp_path), torch.device("cpu")).module  # the stage cache's route
    for clone in (copy.deepcopy(model), saved):
        assert set(sharing.shared_layers(clone)) == set(prunable_layers(model))
        opt = torch.optim.SGD(clone.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3)
        for _ in range(3):
            opt.zero_grad()
            nn.functional.cross_entropy(clone(torch.randn(8, 3, 8, 8)), torch.randint(0, 4, (8,))).backward()
            opt.step()
        sharing.sync_(clone)
        assert max(sharing.distinct_values(clone).values()) <= 4
        assert all(torch.equal(masks(clone)[n], masks(model)[n]) for n in masks(model))
    saved = {k: v.clone() for k, v in clone.state_dict().items()}
    fresh = copy.deepcopy(model)
    fresh.load_state_dict(saved)  # a loaded checkpoint is the new shared values, exactly
    fresh(torch.zeros(1, 3, 8, 8))
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in saved.items())


def with_cluster(cfg, chain=("train", "prune", "cluster", "finetune"), **opts):
    OmegaConf.set_struct(cfg, False)
    cfg.prune = {"stage": "prune", "method": "magnitude", "amount": 0.7, "scope": "global"}
    cfg.cluster = {"stage": "cluster", **opts}
    cfg.chain = list(chain)
    return cfg


def test_finetune_after_cluster_trains_the_shared_values(make_cfg, tmp_path: Path):
    out = tmp_path / "run"
    rows = {r["stage"]: r for r in run(with_cluster(make_cfg(*QUICK, "finetune.epochs=2", "finetune.lr=0.02"),
                                                    conv_bits=3, linear_bits=2), out)}
    prune, cluster, finetune = rows["prune"], rows["cluster"], rows["finetune"]
    assert cluster["status"] == finetune["status"] == "ok"
    assert cluster["nonzero_params"] == prune["nonzero_params"] == finetune["nonzero_params"]
    assert cluster["conv_bits"] == 3 and cluster["linear_bits"] == 2 and 1 <= cluster["distinct_values_max"] <= 8
    # The dense artifact does not shrink; the codebook form does, verified.
    assert cluster["size_bytes"] == pytest.approx(prune["size_bytes"], rel=0.01)
    assert cluster["encode_verified"] is True and cluster["encoded_bytes"] < prune["encoded_bytes"] / 2
    layers = read_csv(out / "stages/02_cluster/layers.csv")
    assert {r["layer"] for r in layers} == set(prunable_layers(build_model({"name": "lenet5"}, 4, 1, 8)))
    state = torch.load(out / "stages/03_finetune/best.pt", weights_only=True)
    trained = torch.load(out / "stages/03_finetune/last.pt", weights_only=True)
    clustered_state = {k: v for k, v in state.items() if k.endswith("weight") and v.dim() > 1}
    for key, w in clustered_state.items():
        limit = 4 if w.dim() == 2 else 8
        assert torch.unique(w[w != 0]).numel() <= limit, key
        assert torch.unique(trained[key][trained[key] != 0]).numel() <= limit, key
    assert 1 <= finetune["distinct_values_max"] <= 8  # measured on the finetuned weights
    assert finetune["test_acc"] != cluster["test_acc"] or finetune["val_acc"] != cluster["val_acc"]  # it trained


@pytest.mark.parametrize("opts, message", [
    ({"conv_bits": 0}, "cluster.conv_bits=0 is not allowed: 1..8 bits"),
    ({"linear_bits": 9}, "cluster.linear_bits=9 is not allowed: 1..8 bits"),
    ({"layer_bits": {"features.0": 12}}, "cluster.layer_bits.features.0=12 is not allowed: 1..8"),
    ({"init": "kmeans"}, "cluster.init='kmeans' is not allowed: one of linear, density, random, kmeans\\+\\+"),
    ({"update": "median"}, "cluster.update='median' is not allowed: mean"),
    ({"layer_bits": {"features.9": 4}}, "cluster.layer_bits='features.9' is not allowed: .*its layers: features.0, "
                                        "features.3, classifier.0"),
    ({"ignore": ["fc"]}, "cluster.ignore='fc' is not allowed"),
])
def test_bad_values_fail_before_any_work(make_cfg, tmp_path: Path, opts: dict, message: str):
    with pytest.raises(ConfigError, match=message):
        run(with_cluster(make_cfg(*QUICK), **opts), tmp_path / "run")
    assert not (tmp_path / "run" / "results.csv").exists() and not (tmp_path / "cache").exists()


def test_layer_bits_and_ignore_pick_layers():
    cfg = ClusterConfig(conv_bits=8, linear_bits=5, layer_bits={"classifier.4": 2, "features": 3},
                        ignore=["classifier.0"])
    model = build_model({"name": "lenet5"}, 4, 1, 8)
    picked = {n: cfg.bits_for(n, m) for n, m in prunable_layers(model).items()}
    assert picked == {"features.0": 3, "features.3": 3, "classifier.0": None, "classifier.2": 5, "classifier.4": 2}
