"""The training route (engine/route.py): what auto picks, what is keyed, and that each route trains."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from compressbench.config.train import TrainConfig
from compressbench.data import Augment
from compressbench.data.synthetic import load_synthetic
from compressbench.data.tensors import TensorLoader
from compressbench.engine import Loaders, fit
from compressbench.engine import route as route_mod
from compressbench.engine.loop import is_channels_last
from compressbench.engine.route import TrainRoute, choose_route, is_conv_net

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.fixture
def native_bf16(monkeypatch):
    def set_(value: bool) -> None:
        monkeypatch.setattr(route_mod, "cpu_native_bf16", lambda: value)
    return set_


@pytest.mark.parametrize(("device", "native", "conv", "expected"), [
    (CPU, True, True, "bf16+channels_last"),  # this machine's kind: AVX-512 BF16
    (CPU, False, True, "fp32+channels_last"),  # emulated bf16 is slow: fp32, but channels-last still helps
    (CPU, True, False, "fp32"),  # an MLP: nothing to gain
    (CUDA, False, True, "channels_last+compile"),  # precision on CUDA is asked of the device (below)
])
def test_auto_picks_the_measured_route(device, native, conv, expected, native_bf16, monkeypatch):
    native_bf16(native)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    route = choose_route(device, "auto", "auto", "auto", conv)
    name = route.name if device.type == "cpu" else route.name.split("+", 1)[1]
    assert name == expected
    if device.type == "cuda":
        assert route.precision.dtype == torch.bfloat16


def test_explicit_values_are_taken_as_given(native_bf16):
    native_bf16(True)
    assert choose_route(CPU, "off", "auto", "auto", True).name == "fp32+channels_last"
    assert choose_route(CPU, "auto", "false", "auto", True).name == "fp32"  # bf16 never without channels-last
    assert choose_route(CPU, "bf16", "false", "true", False).name == "bf16+compile"
    assert choose_route(CPU, "auto", True, False, True).name == "bf16+channels_last"  # YAML booleans too


def test_conv_nets_are_told_from_mlps_without_building_weights():
    assert is_conv_net({"name": "resnet20"}) and is_conv_net({"name": "lenet5"})
    assert not is_conv_net({"name": "lenet300_100"}) and not is_conv_net({"name": "mlp"})


def test_precision_is_in_the_key_memory_format_and_compile_are_not(make_cfg, native_bf16):
    from compressbench.pipeline.keys import chain_keys
    from compressbench.pipeline.plan import EXPERIMENTS, validate

    native_bf16(True)

    def first_key(*overrides: str) -> str:
        cfg = make_cfg(*overrides)
        return chain_keys(validate(cfg), "fingerprint", EXPERIMENTS)[0]

    base = first_key("runtime.amp=bf16")
    assert first_key("runtime.amp=bf16", "runtime.channels_last=false", "runtime.compile=true") == base
    assert first_key("runtime.amp=auto") == base  # auto resolves to bf16 here: the same key
    assert first_key("runtime.amp=off") != base


def _tiny_run(route: TrainRoute, epochs: int = 6) -> tuple[nn.Module, list[dict]]:
    data = load_synthetic({"num_classes": 4, "in_channels": 3, "image_size": 12, "n_train": 384, "n_test": 128,
                           "noise": 0.3}, None, None)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                          nn.Conv2d(16, 16, 3, padding=1, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(16, 4))
    train = TensorLoader(data.train, 32, mean=data.mean, std=data.std, shuffle=True, augment=Augment(1, True),
                         drop_last=True, channels_last=route.channels_last)
    val = TensorLoader(data.test, 128, mean=data.mean, std=data.std)
    fitted = fit(model, TrainConfig(epochs=epochs, batch_size=32, lr=0.05), Loaders(train, val),
                 precision=route.precision, channels_last=route.channels_last, compile=route.compile)
    return fitted.model, fitted.history


def test_a_bf16_channels_last_training_learns_like_fp32():
    fp32_model, fp32 = _tiny_run(TrainRoute.plain(CPU))
    model, bf16 = _tiny_run(choose_route(CPU, "bf16", "true", "false", True))
    # Same initial weights and batches: the loss curves and the final accuracy agree within bf16's rounding.
    assert bf16[-1]["train_loss"] == pytest.approx(fp32[-1]["train_loss"], abs=0.1)
    assert abs(bf16[-1]["val_acc"] - fp32[-1]["val_acc"]) <= 5.0 and fp32[-1]["val_acc"] > 60
    assert not is_channels_last(model)  # back in the memory format it came in: later stages see no change


class _Compiled(nn.Module):
    """What torch.compile returns, as far as the loop can tell: a wrapper holding the module as ``_orig_mod``."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self._orig_mod = module

    def forward(self, x):
        return self._orig_mod(x)


def test_compile_runs_the_steps_through_torch_compile(monkeypatch):
    from compressbench.engine import Callback

    seen = []

    class Spy(Callback):
        def after_step(self, model, step):
            seen.append(model)

    monkeypatch.setattr(torch, "compile", _Compiled)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 2))
    batches = [(torch.randn(8, 3, 2, 2), torch.randint(0, 2, (8,)))]

    class Loader(list):
        def set_epoch(self, epoch):
            pass

    fit(model, TrainConfig(epochs=1, batch_size=8, lr=0.05), Loaders(Loader(batches), batches),
        precision=TrainRoute.plain(CPU).precision, compile=True, callbacks=(Spy(),))
    assert seen and all(m is model for m in seen)  # callbacks see the user's module, not the wrapper


def test_every_row_names_its_training_route(make_cfg, tmp_path):
    from compressbench.pipeline.runner import run

    rows = run(make_cfg("chain=[train]", "runtime.amp=off", "runtime.channels_last=false", "measure.latency=false"),
               tmp_path / "r")
    assert rows[0]["train_route"] == "fp32" and rows[0]["precision"] == "fp32"
