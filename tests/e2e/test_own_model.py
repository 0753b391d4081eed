"""Bring your own model: every stage kind on torchvision models outside the zoo, the user's ``nn.Module`` and
Datasets through ``compressbench.run``, and what cannot work on an arbitrary module reported as ``unsupported``
with its reason (an untraceable branch, an op ONNX cannot export)."""
from __future__ import annotations

import shlex
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

import compressbench
from compressbench.pipeline import runner
from compressbench.pipeline.keys import chain_keys
from compressbench.pipeline.plan import EXPERIMENTS, validate
from compressbench.report.points import command

# Every stage kind, in four chains. Small on purpose:
# 32 px, 48 images, one epoch, few calibration batches, no timing (timing is not what this tests).
STAGES = ["+stage@magnitude=prune", "+stage@l1_filter=prune", "+stage@int8=quantize", "+stage@int8_ort=quantize",
          "+stage@kd=distill", "+stage@cluster=cluster", "+stage@encode=encode", "+stage@lowrank=lowrank"]
OPTIONS = ["magnitude.amount=0.5", "l1_filter.method=l1_filter", "l1_filter.amount=0.3", "int8.backend=fx",
           "int8.calibration_batches=2", "int8.calibration_batch_size=16", "int8_ort.backend=onnxruntime",
           "int8_ort.calibration_batches=2", "int8_ort.calibration_batch_size=16", "kd.student=torchvision",
           "+kd.student_options={arch:mobilenet_v3_small,args:{width_mult:0.25}}", "kd.epochs=1",
           "kd.batch_size=16", "cluster.conv_bits=4", "cluster.linear_bits=4", "cluster.iters=5",
           "encode.verify_images=8", "lowrank.method=ratio"]
CHAINS = ["[train,l1_filter,magnitude,cluster,encode]", "[train,lowrank,int8_ort,export]", "[train,int8]",
          "[train,kd]"]
SMALL = ["dataset.in_channels=3", "dataset.image_size=32", "dataset.n_train=48", "dataset.n_test=16",
         "train.epochs=1", "measure.latency=false"]


MOBILENET = ("mobilenet_v3_small", ["model.args={width_mult:0.25}"])  # hard-swish, squeeze-excitation, depthwise
SHUFFLENET = ("shufflenet_v2_x0_5", [])  # channel shuffle (view/transpose), chunk
PRUNE_SHUFFLE = "torch-pruning cannot map the channels of ShuffleNetV2 in torch-pruning's update_reshape_index_mapping"
INT8_SHUFFLE = "an int8 kernel is missing on this CPU/engine: RuntimeError: required rank 4 tensor"  # 5-d shuffle
KINDS = [pytest.param(*MOBILENET, CHAINS[1], None, id="mobilenet_v3_small-lowrank-ort-export")] + [
    pytest.param(*model, chain, reason, marks=pytest.mark.slow,
                 id=f"{model[0]}-{chain.strip('[]').replace(',', '-')}")
    for model, chain, reason in [(MOBILENET, CHAINS[0], None), (MOBILENET, CHAINS[2], None),
                                 (MOBILENET, CHAINS[3], None), (SHUFFLENET, CHAINS[3], None),
                                 (SHUFFLENET, "[train,magnitude,cluster,encode]", None),
                                 (SHUFFLENET, CHAINS[1], None), (SHUFFLENET, CHAINS[2], INT8_SHUFFLE),
                                 (SHUFFLENET, "[train,l1_filter]", PRUNE_SHUFFLE)]]


@pytest.mark.parametrize("arch, args, chain, unsupported", KINDS)
def test_every_stage_kind_on_a_torchvision_model(make_cfg, tmp_path: Path, arch: str, args: list[str],
                                                 chain: str, unsupported: str | None) -> None:
    """Together the chains run every kind on both models (the default suite the quickest, ~15 s here); what
    cannot work on one ends its chain as ``unsupported``, saying why."""
    overrides = ["model=torchvision", f"model.arch={arch}", *args, *SMALL, *STAGES, *OPTIONS, f"chain={chain}"]
    cfg = make_cfg(*overrides)
    table = pd.DataFrame(runner.run(cfg, tmp_path / "run", overrides, figures=False))
    assert list(table["stage"]) == chain.strip("[]").split(",")
    if unsupported:
        assert table["status"].iloc[-1] == "unsupported" and unsupported in table["error"].iloc[-1]
        table = table.iloc[:-1]
    assert (table["status"] == "ok").all(), table[["stage", "status", "error"]].to_string()
    students = table["stage"] == "kd"
    assert (table[~students]["model"] == arch).all() if not students.any() else \
        set(table["model"]) <= {arch, "mobilenet_v3_small"}
    if students.any():  # the student goes on, and the rows after it say so
        assert (table["model"].iloc[list(table["stage"]).index("kd"):] == "mobilenet_v3_small").all()
    if "l1_filter" in table["stage"].values:
        assert table[table["stage"] == "l1_filter"]["params"].item() < table["params"].iloc[0]  # channels removed
    # The reproduce command, as printed, composes back to the same stage keys.
    words = shlex.split(command(pd.Series({**table.iloc[-1], "seeds": ""}), list(table["stage"])))
    assert words[:3] == ["python", "-m", "compressbench"]
    again = make_cfg(*words[3:])
    assert chain_keys(validate(again), "fp", EXPERIMENTS) == chain_keys(validate(cfg), "fp", EXPERIMENTS)[: len(table) + 1]


class TinyNet(nn.Module):
    def __init__(self, classes: int = 4) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(2))
        self.fc = nn.Linear(32, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.features(x), 1))


class Branchy(TinyNet):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        if x.mean() > 0:  # data-dependent control flow: FX cannot trace it
            x = x * 2
        return self.fc(torch.flatten(x, 1))


class CumMax(TinyNet):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(torch.cummax(self.features(x), dim=3)[0], 1))  # no ONNX export of cummax


def datasets(n: int = 48) -> tuple[TensorDataset, TensorDataset]:
    g = torch.Generator().manual_seed(0)

    def make(m: int) -> TensorDataset:
        y = torch.arange(m) % 4
        return TensorDataset((y.view(-1, 1, 1, 1) / 4 + 0.2 * torch.rand(m, 1, 8, 8, generator=g)).clamp(0, 1), y)

    return make(n), make(16)


def run(module: nn.Module, out: Path, *overrides: str, data=None) -> pd.DataFrame:
    return compressbench.run(model=module, data=data or datasets(), output_dir=out, overrides=[
        "train.epochs=1", "train.batch_size=16", "measure.latency=false", "runtime.progress=false",
        f"paths.cache_dir={out.parent / 'cache'}", *overrides])


def test_run_takes_your_module_and_datasets(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = TinyNet()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    df = run(net, tmp_path / "a", "chain=[train,prune]")
    assert list(df["stage"]) == ["train", "prune"] and (df["status"] == "ok").all()
    assert set(df["model"]) == {"TinyNet"} and set(df["dataset"]) == {"TensorDataset"}
    assert df["sparsity"].iloc[-1] > 0.5 and df["test_acc"].notna().all()
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())  # yours is left as it was
    again = run(net, tmp_path / "b", "chain=[train,prune]")  # the same module and data: every stage cached
    assert again["cache_hit"].all() and list(again["stage_key"]) == list(df["stage_key"])
    torch.manual_seed(1)
    other = run(TinyNet(), tmp_path / "c", "chain=[train]")  # other initial weights: another model
    assert not other["cache_hit"].any() and other["stage_key"].iloc[0] != df["stage_key"].iloc[0]
    summary = (tmp_path / "a" / "summary.md").read_text()
    assert "compressbench.run(model=<your TinyNet>, data=<your (train, test) TensorDataset>" in summary
    assert "model.digest" not in summary  # a command line could not reproduce it: the call is printed instead


def test_your_module_must_fit_the_data_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"returns \(2, 3\).*needs \(2, 4\) logits"):
        run(TinyNet(classes=3), tmp_path / "a", "chain=[train]")
    with pytest.raises(ValueError, match=r"floats in \[0, 1\].*without Normalize"):
        train, test = datasets()
        run(TinyNet(), tmp_path / "b", "chain=[train]", data=(TensorDataset(train.tensors[0] - 0.5, train.tensors[1]),
                                                            test))


@pytest.mark.parametrize("net, backend, reason", [
    (Branchy, "fx", "cannot be used as inputs to control flow"),
    (CumMax, "onnxruntime", "op aten::cummax"),
])
def test_what_cannot_work_on_your_module_is_unsupported_with_the_reason(tmp_path: Path, net: type, backend: str,
                                                                         reason: str) -> None:
    df = run(net(), tmp_path / "run", "chain=[train,quantize]", f"quantize.backend={backend}")
    assert list(df["status"]) == ["ok", "unsupported"]
    assert reason in df["error"].iloc[-1]
