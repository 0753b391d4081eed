from __future__ import annotations

import pytest
import torch
from torch import nn

from compressbench.engine import (
    Diverged,
    Precision,
    build_scheduler,
    cross_entropy,
    evaluate,
    train_one_epoch,
)
from compressbench.engine.train import TrainConfig


def lr_trace(cfg: TrainConfig, steps_per_epoch: int) -> list[float]:
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    sched = build_scheduler(opt, cfg, steps_per_epoch)
    trace = []
    for _ in range(cfg.epochs * steps_per_epoch):
        trace.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return trace


def test_cosine_with_warmup():
    trace = lr_trace(TrainConfig(epochs=10, lr=1.0, warmup_epochs=1), steps_per_epoch=10)
    assert trace[0] == pytest.approx(0.1) and trace[9] == pytest.approx(1.0)  # linear warm-up
    assert trace[10] == pytest.approx(1.0) and trace[-1] < 0.01  # cosine to ~0
    assert all(a >= b for a, b in zip(trace[10:], trace[11:], strict=False))


def test_multistep_milestones_are_epochs():
    trace = lr_trace(TrainConfig(epochs=4, lr=1.0, scheduler="multistep", milestones=[2, 3], gamma=0.1), 5)
    assert trace[9] == 1.0 and trace[10] == pytest.approx(0.1) and trace[15] == pytest.approx(0.01)


def test_evaluate_topk_by_hand():
    model = nn.Linear(3, 3, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.eye(3))
    x = torch.tensor([[3.0, 2.0, 1.0], [1.0, 3.0, 2.0], [1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
    y = torch.tensor([0, 2, 2, 2])  # right, 2nd choice, right, 3rd choice
    out = evaluate(model, [(x, y)], topk=(1, 2))
    assert out["top1"] == 50.0 and out["top2"] == 75.0


def test_training_lowers_the_loss_and_nan_raises_diverged():
    torch.manual_seed(0)
    x = torch.randn(64, 5)
    y = (x[:, 0] > 0).long()
    model = nn.Linear(5, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    batches = [(x[i:i + 16], y[i:i + 16]) for i in range(0, 64, 16)]
    first = train_one_epoch(model, batches, opt, cross_entropy(), precision=Precision("cpu"))
    for _ in range(5):
        last = train_one_epoch(model, batches, opt, cross_entropy(), precision=Precision("cpu"))
    assert last["train_loss"] < first["train_loss"] and last["train_acc"] > 90
    bad = [(torch.full((4, 5), float("nan")), torch.zeros(4, dtype=torch.long))]
    with pytest.raises(Diverged):
        train_one_epoch(model, bad, opt, cross_entropy(), precision=Precision("cpu"))


def test_precision_is_fp32_on_cpu_unless_asked():
    assert Precision.for_device(torch.device("cpu"), "auto").dtype is None
    assert Precision.for_device(torch.device("cpu"), "bf16").dtype == torch.bfloat16


def test_keep_sparsity_holds_zeros_through_training():
    from compressbench.engine import KeepSparsity

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 2))
    with torch.no_grad():
        model[0].weight[:, :3] = 0
    zeros = model[0].weight == 0
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9, weight_decay=1e-3)
    keep = KeepSparsity()
    keep.on_train_begin(model, 4, 3)
    x, y = torch.randn(64, 5), torch.randint(0, 2, (64,))
    for _ in range(3):
        train_one_epoch(model, [(x[i:i + 16], y[i:i + 16]) for i in range(0, 64, 16)], opt, cross_entropy(),
                        precision=Precision("cpu"), callbacks=(keep,))
    assert bool((model[0].weight[zeros] == 0).all())
    assert bool((model[0].weight[~zeros] != 0).all())  # the rest trained
    assert len(keep.masks) == 1  # the dense layer is left alone


def test_criterion_receives_sample_index_when_the_loader_gives_it():
    seen = []

    def criterion(logits, targets, inputs, index):
        seen.append(index)
        return logits.sum() * 0

    model = nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    batches = [(torch.zeros(3, 2), torch.zeros(3, dtype=torch.long), torch.tensor([4, 5, 6]))]
    train_one_epoch(model, batches, opt, criterion, precision=Precision("cpu"))
    train_one_epoch(model, [batches[0][:2]], opt, criterion, precision=Precision("cpu"))
    assert seen[0].tolist() == [4, 5, 6] and seen[1] is None


def test_resume_state_loads_on_the_cpu(tmp_path, monkeypatch):
    """RNG states must come back as CPU tensors whatever the training device (set_rng_state refuses others)."""
    from compressbench.engine.env import Checkpoint

    ckpt = Checkpoint(tmp_path / "resume.pt", key="k", history_dir=None, writer=True, label="train")
    ckpt.save({"epoch": 1, "rng": torch.get_rng_state(), "model": {"w": torch.ones(2)}})
    asked = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: asked.append(k.get("map_location")) or real_load(*a, **k))
    state = ckpt.load()
    assert asked == ["cpu"]  # a CUDA run's resume must not map the CPU RNG state onto the GPU
    assert state is not None and state["epoch"] == 1 and state["rng"].device.type == "cpu"
    torch.set_rng_state(state["rng"])
    assert Checkpoint(tmp_path / "resume.pt", key="other", history_dir=None, writer=True, label="t").load() is None


def test_git_sha_names_this_checkout():
    """provenance.git_sha looks for .git at the repository root (two levels above its module)."""
    from pathlib import Path

    from compressbench.pipeline import provenance

    root = Path(provenance.__file__).resolve().parents[2]
    if not (root / ".git").exists():
        pytest.skip("installed without a git checkout: git_sha is empty by design")
    assert provenance.git_sha().split("+")[0], "a checkout must name its commit"


class _Epochs(list):
    def set_epoch(self, epoch: int) -> None:
        pass


def test_training_speed_is_the_median_epoch_not_the_last(monkeypatch):
    from compressbench.engine import Loaders, fit, loop

    speeds = iter([700.0, 690.0, 710.0, 88.0])  # the last epoch ran on a loaded machine
    monkeypatch.setattr(loop, "train_one_epoch", lambda *a, **k: {"train_loss": 0.1, "images_per_s": next(speeds)})
    x, y = torch.randn(8, 3), torch.zeros(8, dtype=torch.long)
    fitted = fit(nn.Linear(3, 2), TrainConfig(epochs=4, lr=0.1), Loaders(_Epochs([(x, y)]), [(x, y)]),
                 precision=Precision("cpu"))
    assert fitted.record["train_images_per_s"] == pytest.approx(695.0)
