"""The model zoo: every registered model builds, runs, traces and has the parameters it should; offline."""
from __future__ import annotations

import logging
import socket
import urllib.error
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.fx
import torchvision
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from torch import nn
from torchvision.models import WeightsEnum

from compressbench.config import conf_dir
from compressbench.infra.registry import UnknownNameError
from compressbench.models import MODELS, SOURCES, build_model, model_options
from compressbench.models.alexnet import CifarAlexNet
from compressbench.models.resnet_cifar import BasicBlock

NAMES = MODELS.names()
PRETRAINABLE = [n for n in NAMES if "pretrained" in model_options(n)]
# The torchvision model each ImageNet-capable entry reproduces at 224x224 with 1000 classes.
TORCHVISION = {"alexnet": "alexnet", "vgg16": "vgg16_bn", "resnet34": "resnet34", "resnet50": "resnet50",
               "densenet121": "densenet121"}
# He et al. 2016 Table 6 counts (option A, 10 classes); option B adds 1x1 convs + BN at the two stage changes:
# 16*32 + 2*32 + 32*64 + 2*64 = 2,752 parameters.
PAPER_OPTION_A = {8: 75_290, 20: 269_722, 32: 464_154, 44: 658_586, 56: 853_018, 110: 1_727_962}
OPTION_B_EXTRA = 2_752
# Measured at 10 classes, 3 channels, 32x32: a change to any architecture shows up here.
PARAMS_10_3_32 = {
    "alexnet": 4_361_034, "densenet121": 6_956_426, "lenet300_100": 953_010, "lenet5": 62_006, "lenet5_caffe": 657_080,
    "resnet8": 78_042, "resnet20": 272_474, "resnet32": 466_906, "resnet44": 661_338, "resnet56": 855_770,
    "resnet110": 1_730_714, "resnet34": 21_282_122, "resnet50": 23_520_842, "vgg16": 14_990_922,
    "small_cnn": 24_346, "mlp": 5_140_810,
}


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """These tiny forward passes are overhead-bound; on a busy 2-core host 2 threads made the file 10x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a connection fails the test instead of downloading."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("tests must not touch the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.mark.parametrize("num_classes,in_channels,image_size",
                         [(10, 1, 8), (23, 3, 32), (10, 3, 64), (2, 1, 28)])
@pytest.mark.parametrize("name", NAMES)
def test_output_shape(name: str, num_classes: int, in_channels: int, image_size: int) -> None:
    torch.manual_seed(0)
    model = build_model({"name": name}, num_classes, in_channels, image_size).eval()
    with torch.no_grad():
        out = model(torch.randn(2, in_channels, image_size, image_size))
    assert out.shape == (2, num_classes)
    assert torch.isfinite(out).all()


def meta_output_shape(name: str, in_channels: int, image_size: int) -> tuple[int, ...]:
    """Shapes only, on the meta device: no memory, no arithmetic."""
    with torch.device("meta"):
        model = MODELS[name](7, in_channels, image_size).eval()
        return tuple(model(torch.empty(2, in_channels, image_size, image_size)).shape)


@pytest.mark.parametrize("name,image_size", [
    ("lenet5", 9), ("lenet5", 31), ("alexnet", 63), ("alexnet", 65), ("vgg16", 127), ("vgg16", 128),
    ("resnet50", 63), ("densenet121", 63), ("resnet20", 224),
])
def test_sizes_around_variant_switches(name: str, image_size: int) -> None:
    assert meta_output_shape(name, 1, image_size) == (2, 7)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_every_size(name: str) -> None:
    for size in [8, 9, 11, 15, 28, 31, 33, 63, 64, 65, 127, 128, 224]:
        for channels in (1, 3):
            assert meta_output_shape(name, channels, size) == (2, 7), (size, channels)


@pytest.mark.parametrize("name", NAMES)
def test_train_mode_backward(name: str) -> None:
    """Every model trains (batch-norm included) on batch 2 at the smallest size, with 1000 classes."""
    model = build_model({"name": name}, 1000, 1, 8).train()
    model(torch.randn(2, 1, 8, 8)).sum().backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("name", NAMES)
def test_fx_traceable_and_equal(name: str) -> None:
    torch.manual_seed(0)
    model = build_model({"name": name}, 10, 3, 32).eval()
    traced = torch.fx.symbolic_trace(model)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(traced(x), model(x))


@pytest.mark.parametrize("name", NAMES)
def test_parameter_count_at_cifar_size(name: str) -> None:
    assert n_params(build_model({"name": name}, 10, 3, 32)) == PARAMS_10_3_32[name]


def test_classic_lenet_counts() -> None:
    assert n_params(MODELS["lenet5"](10, 1, 32)) == 61_706
    assert n_params(MODELS["lenet300_100"](10, 1, 28)) == 266_610


@pytest.mark.parametrize("depth", sorted(PAPER_OPTION_A))
def test_cifar_resnet_counts_and_option_b_shortcuts(depth: int) -> None:
    model = MODELS[f"resnet{depth}"](10, 3, 32)
    assert n_params(model) == PAPER_OPTION_A[depth] + OPTION_B_EXTRA
    blocks = [m for m in model.modules() if isinstance(m, BasicBlock)]
    assert len(blocks) == (depth - 2) // 2  # 2 convs per block, + stem conv + fc = depth
    projections = [b.downsample for b in blocks if b.downsample is not None]
    assert len(projections) == 2  # at the 16→32 and 32→64 stage changes only
    for proj in projections:
        conv, bn = proj
        assert isinstance(conv, nn.Conv2d) and conv.kernel_size == (1, 1) and conv.stride == (2, 2)
        assert isinstance(bn, nn.BatchNorm2d)
    # Only standard layers: nothing (like option A's lambda) that pruning or quantization cannot see into.
    allowed = (nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.Linear, nn.AdaptiveAvgPool2d, nn.Sequential, BasicBlock)
    assert all(isinstance(m, allowed) for m in model.modules() if m is not model)


@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_imagenet_size_matches_torchvision(name: str) -> None:
    """At 224x224x3 with 1000 classes the tensor names and shapes are torchvision's (so weights load)."""
    with torch.device("meta"):  # no memory, no init time: only the structure is compared
        ours = build_model({"name": name}, 1000, 3, 224).state_dict()
        ref = getattr(torchvision.models, TORCHVISION[name])().state_dict()
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in ref.items()}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_imagenet_size_forward(name: str) -> None:
    model = build_model({"name": name}, 1000, 3, 224).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 224, 224)).shape == (2, 1000)


def test_lenet5_padding_and_flatten_size() -> None:
    for size, pads, flat in [(32, (0, 0), 400), (28, (2, 0), 400), (8, (2, 2), 64), (16, (2, 0), 64)]:
        model = MODELS["lenet5"](10, 1, size)
        assert (model.features[0].padding[0], model.features[3].padding[0]) == pads, size
        assert model.classifier[0].in_features == flat, size


def test_small_image_variants() -> None:
    with torch.device("meta"):
        big = MODELS["alexnet"](10, 3, 64)
    small = MODELS["alexnet"](10, 3, 63)
    assert isinstance(big, torchvision.models.AlexNet) and isinstance(small, CifarAlexNet)
    vgg8 = MODELS["vgg16"](10, 3, 8)
    assert sum(isinstance(m, nn.MaxPool2d) for m in vgg8.features) == 3  # 8 → 4 → 2 → 1, then no more
    assert len(vgg8.features) == len(MODELS["vgg16"](10, 3, 32).features)  # Identity keeps the indices
    assert vgg8.classifier[0].in_features == 512
    for name, stem, pool in [("resnet34", "conv1", "maxpool"), ("resnet50", "conv1", "maxpool"),
                             ("densenet121", "features.conv0", "features.pool0")]:
        small, big = MODELS[name](10, 1, 32), MODELS[name](10, 1, 64)
        assert small.get_submodule(stem).kernel_size == (3, 3) and small.get_submodule(stem).stride == (1, 1)
        assert isinstance(small.get_submodule(pool), nn.Identity)
        assert big.get_submodule(stem).kernel_size == (7, 7) and big.get_submodule(stem).stride == (2, 2)
        assert isinstance(big.get_submodule(pool), nn.MaxPool2d)
        assert small.get_submodule(stem).in_channels == big.get_submodule(stem).in_channels == 1


def test_options_reach_the_model() -> None:
    model = build_model(OmegaConf.create({"name": "vgg16", "dropout": 0.2}), 10, 3, 32)
    assert [m.p for m in model.modules() if isinstance(m, nn.Dropout)] == [0.2]


@pytest.mark.parametrize("name", NAMES)
def test_unknown_option_lists_accepted_ones(name: str) -> None:
    with pytest.raises(ValueError, match="no option 'widht'") as e:
        build_model({"name": name, "widht": 2}, 10, 3, 32)
    accepted = model_options(name)
    assert all(k in str(e.value) for k in accepted) and (accepted or "none" in str(e.value))


def test_unknown_option_suggests_the_close_one() -> None:
    with pytest.raises(ValueError, match="did you mean 'pretrained'"):
        build_model({"name": "resnet50", "pretrain": True}, 10, 3, 32)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("args,message", [
    ((1, 3, 32), r"num_classes=1 .*>= 2"),
    ((10, 2, 32), r"in_channels=2 .*1 \(grayscale\) or 3"),
    ((10, 3, 7), r"image_size=7 .*>= 8"),
    ((10.0, 3, 32), r"num_classes=10.0 .*integer"),
])
def test_bad_arguments_say_what_is_allowed(name: str, args: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MODELS[name](*args)


@pytest.mark.parametrize("option,value,message", [
    ("pretrained", "yes", r"model.pretrained='yes' .*true or false"),
    ("dropout", 1.5, r"model.dropout=1.5 .*0 <= p < 1"),
])
def test_bad_option_values(option: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_model({"name": "alexnet", option: value}, 10, 3, 32)


def test_unknown_or_missing_name() -> None:
    with pytest.raises(UnknownNameError, match="valid models: alexnet, callable, densenet121"):
        build_model({"name": "resnet18"}, 10, 3, 32)
    with pytest.raises(ValueError, match="no 'name'.*lenet5"):
        build_model({"pretrained": False}, 10, 3, 32)


def test_every_yaml_is_registered_and_every_name_has_a_yaml() -> None:
    files = sorted((conf_dir() / "model").glob("*.yaml"))
    assert sorted(f.stem for f in files) == sorted([*NAMES, *SOURCES.names()])  # the zoo, then outside models
    for f in files:
        node = OmegaConf.to_container(OmegaConf.load(f))
        assert node.pop("name") == f.stem
        defaults = {k: list(v) if isinstance(v, tuple) else v for k, v in model_options(f.stem).items()}
        assert node == defaults, f"{f.name} lists other options/defaults than the builder"
        assert f.read_text().startswith("#"), f"{f.name} should say what the model is in a comment"


@pytest.mark.parametrize("name", NAMES)
def test_hydra_composes_model_group(name: str) -> None:
    with initialize_config_dir(config_dir=str(conf_dir()), version_base=None):
        cfg = compose(overrides=[f"+model={name}"])
    assert cfg.model.name == name
    assert build_model(cfg.model, 10, 1, 8)(torch.randn(2, 1, 8, 8)).shape == (2, 10)


# --- pretrained weights: never downloaded here ---

def fake_imagenet_state(name: str) -> dict[str, torch.Tensor]:
    """Random tensors shaped like torchvision's checkpoint. Tensors over 4M values (the ImageNet classifiers,
    never loaded into a 32x32 model) stay on the meta device: no memory, no time."""
    with torch.device("meta"):
        state = getattr(torchvision.models, TORCHVISION[name])().state_dict()
    shapes = {k: (v.shape, v.dtype) for k, v in state.items()}
    gen = torch.Generator().manual_seed(1)
    return {k: torch.randn(s, generator=gen).to(dtype) if s.numel() <= 4_000_000
            else torch.empty(s, device="meta") for k, (s, dtype) in shapes.items()}


@pytest.mark.parametrize("name", PRETRAINABLE)
def test_pretrained_offline_error_says_where_to_put_the_file(
    name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def offline(self: WeightsEnum, *args: object, **kwargs: object) -> dict:
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(WeightsEnum, "get_state_dict", offline)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(RuntimeError) as e:
        build_model({"name": name, "pretrained": True}, 10, 3, 32)
    msg = str(e.value)
    assert str(tmp_path / "hub" / "checkpoints") in msg and ".pth" in msg
    assert "model.pretrained=false" in msg and name in msg


@pytest.mark.parametrize("name,skipped", [
    ("resnet34", {"conv1.weight", "fc.weight", "fc.bias"}),
    ("resnet50", {"conv1.weight", "fc.weight", "fc.bias"}),
    ("densenet121", {"features.conv0.weight", "classifier.weight", "classifier.bias"}),
    ("vgg16", {f"classifier.{i}.{p}" for i in (0, 3, 6) for p in ("weight", "bias")}),
    # conv1/conv2 are 3x3 here (11x11, 5x5 in ImageNet AlexNet): their biases are not taken either.
    ("alexnet", {f"features.{i}.{p}" for i in (0, 3) for p in ("weight", "bias")}
     | {f"classifier.{i}.{p}" for i in (1, 4, 6) for p in ("weight", "bias")}),
])
def test_pretrained_loads_matching_tensors(
    name: str, skipped: set[str], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="compressbench")
    fake = fake_imagenet_state(name)
    if name == "densenet121":  # torchvision's DenseNet checkpoints use the old "norm.1" style names
        fake = {k.replace(".norm1.", ".norm.1.").replace(".conv2.", ".conv.2."): v for k, v in fake.items()}
    monkeypatch.setattr(WeightsEnum, "get_state_dict", lambda self, *a, **k: fake)
    model = build_model({"name": name, "pretrained": True}, 10, 3, 32)
    state = model.state_dict()
    loaded = {k for k in fake if k not in skipped}
    for key in loaded:
        new_key = key.replace(".norm.1.", ".norm1.").replace(".conv.2.", ".conv2.")
        assert torch.equal(state[new_key], fake[key]), key
    for key in skipped & set(state):
        assert state[key].shape != fake[key].shape or not torch.equal(state[key], fake[key]), key
    printed = caplog.text
    assert f"loaded {len(loaded)}/{len(fake)}" in printed
    assert all(k in printed for k in skipped)
