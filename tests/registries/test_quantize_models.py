"""Every quantization method on every registered model, through the stage function, on tiny inputs.

Untrained models on 8x8 synthetic images: the quantized model must run, stay close to the fp32 one (SQNR, as
torchao's own tests do), report its runtime, shrink where the method stores fewer bits, keep the MAC count,
and write a fallback report with int8 layers in it. One model per family runs by default; the rest are slow.
"""
from __future__ import annotations

import copy
import csv
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from compressbench.config import conf_dir
from compressbench.engine.env import StageEnv
from compressbench.models import MODELS, build_model
from compressbench.models.counting import count_macs, param_counts
from compressbench.pipeline.runner import stage_env
from compressbench.runtimes import Arch, Eager
from compressbench.stages.quantize import QuantizeConfig, quantize

# By default: the small members of each family for every method, and VGG-16 and torchvision's ResNet-50 (bottleneck
# adds) for static int8 (DenseNet-121's concat: slow) — at 8-25M parameters they take seconds per method even at 8x8.
FAST = {"lenet5", "lenet300_100", "small_cnn", "alexnet", "resnet8"}
FAST_STATIC = FAST | {"vgg16", "resnet50"}  # DenseNet-121 (8 s) is slow: the suite stays under 10 minutes
PT2E_FAST = {"lenet5", "lenet300_100", "resnet8"}  # torch.export + PT2E costs seconds to a minute per model
PT2E = {("static_int8", "pt2e"), ("dynamic_int8", "pt2e")}  # tested below, on fewer models
CPU = torch.device("cpu")

# (method, backend) → (runtime, minimum SQNR in dB against fp32, artifact size against fp32's: "smaller", "same"
# or "any" — dynamic int8 packs only Linear layers, which on a conv net can cost more bytes than it saves)
METHODS = {
    ("static_int8", "fx"): ("fx-int8", 15, "smaller"),
    ("static_int8", "onnxruntime"): ("onnxruntime-int8", 15, "smaller"),
    ("static_int8", "openvino"): ("openvino-int8", 15, "smaller"),  # NNCF calibration of the OpenVINO route
    ("dynamic_int8", "fx"): ("eager-dynamic-int8", 20, "any"),
    ("dynamic_int8", "onnxruntime"): ("onnxruntime-dynamic-int8", 20, "any"),
    ("fp16", "eager"): ("eager-fp16", 30, "smaller"),
    ("bf16", "eager"): ("eager-bf16", 20, "smaller"),
    ("weight_bits", "eager"): ("eager", 20, "same"),  # fp32 kernels; encoded_bytes holds the packed size
    ("qat", "fx"): ("fx-int8", None, "smaller"),  # trained for a step: no longer the fp32 model, so no SQNR
}


def models(fast: set[str]) -> list:
    return [pytest.param(n, marks=() if n in fast else pytest.mark.slow) for n in MODELS.names()]


@pytest.fixture(scope="module")
def ctx(tmp_path_factory) -> StageEnv:
    tmp = tmp_path_factory.mktemp("quantize_models")
    overrides = [f"paths.data_dir={tmp}", f"paths.cache_dir={tmp}/cache", "dataset=synthetic",
                 "dataset.in_channels=3", "dataset.image_size=8", "dataset.n_train=96", "dataset.n_test=32",
                 "measure.latency=false", "runtime.progress=false", "runtime.cache=false"]
    with initialize_config_dir(config_dir=str(conf_dir()), version_base=None):
        cfg = compose("config", overrides=overrides)
    return stage_env(cfg, "quantize", tmp / "run")[0]


def size_of(model) -> int:
    """size_bytes of an fp32 module or a deployable (without the gzip)."""
    return len(model.artifact_bytes() if hasattr(model, "artifact_bytes") else Eager(model, ARCH).artifact_bytes())


ARCH = Arch({"name": "lenet5"}, 4, 3, 8)


def floor(model: torch.nn.Module, min_sqnr: float) -> float:
    """The SQNR bar for ``model``: untrained deep networks compound each layer's int8 noise (ResNet-50 reaches
    3-5 dB, VGG-16 10 dB at 8x8 — ONNX Runtime's int8 as much as FX's — where LeNet reaches 35), so past 12
    conv/linear layers only "correlated with fp32" (2 dB) is asked here; int8 accuracy of trained models,
    residual ones included, is tested in test_quantize.py."""
    layers = sum(isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) for m in model.modules())
    return min_sqnr if layers <= 12 else min(min_sqnr, 2.0)


def sqnr(reference: torch.Tensor, candidate: torch.Tensor) -> float:
    noise = (reference - candidate).pow(2).mean().clamp_min(1e-30)
    return float(10 * torch.log10(reference.pow(2).mean() / noise))


def run_stage(name: str, method: str, backend: str, ctx: StageEnv, tmp_path: Path):
    torch.manual_seed(0)
    model = build_model({"name": name}, ctx.data.num_classes, 3, 8).eval()
    # Untrained, but at a trained model's scale: torchvision's VGG init (N(0, 0.01) Linears) leaves logits near
    # 1e-6, under dynamic int8's smallest scale, and BatchNorms that never saw data let deep ResNets' activations
    # grow past fp16's range. Default-init Linears and BatchNorm statistics of a few batches fix both.
    for m in model.modules():
        if isinstance(m, torch.nn.Linear):
            m.reset_parameters()
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.momentum = None  # a cumulative average
    with torch.no_grad():
        model.train()
        for x, _ in ctx.train_loader(32, augment=False):
            model(x)
    model.eval()
    observer = "minmax" if method == "static_int8" and backend != "openvino" else "auto"  # NNCF has its own
    cfg = QuantizeConfig(method=method, backend=backend, observer=observer,
                         calibration_batches=2, calibration_batch_size=16, weight_bits=8,
                         epochs=1 if method == "qat" else 0, batch_size=32, fp32_routes=[])
    arch = Arch({"name": name}, ctx.data.num_classes, 3, 8)
    result = quantize(Eager(copy.deepcopy(model), arch), cfg, ctx)
    (tmp_path / "stage").mkdir(parents=True, exist_ok=True)
    for file, data in result.files.items():
        (tmp_path / "stage" / file).write_bytes(data)
    return model, result


CASES = [pytest.param(name, method, backend, id=f"{name}-{method}-{backend}",
                      marks=() if name in (FAST_STATIC if (method, backend) == ("static_int8", "fx") else FAST)
                      else pytest.mark.slow)
         for name in MODELS.names() for method, backend in METHODS]


@pytest.mark.parametrize("name, method, backend", CASES)
def test_every_method_on_every_model(name: str, method: str, backend: str, ctx: StageEnv, tmp_path: Path):
    if backend == "onnxruntime":
        pytest.importorskip("onnxruntime", reason='onnxruntime is not installed: pip install onnxruntime')
    if backend == "openvino":
        for package in ("openvino", "nncf"):
            pytest.importorskip(package, reason='the openvino extra is not installed: pip install "compressbench[openvino]"')
    runtime, min_sqnr, smaller = METHODS[(method, backend)]
    model, result = run_stage(name, method, backend, ctx, tmp_path)
    quantized = result.artifact
    x = ctx.example_batch(8, CPU)
    with torch.no_grad():
        y0, y = model(x), quantized(x)
    assert y.shape == y0.shape and y.dtype == torch.float32 and torch.isfinite(y).all()
    assert quantized.runtime == runtime
    if min_sqnr is not None:
        assert sqnr(y0, y) >= floor(model, min_sqnr)
    fp32_size, size = size_of(model), size_of(quantized)
    if smaller == "smaller":
        assert size < fp32_size
    elif smaller == "same":
        assert size == pytest.approx(fp32_size, rel=0.01)
    assert quantized.macs(x[:1])[0] == count_macs(model, x[:1])[0]
    params, _ = quantized.param_counts()
    assert 0.9 * param_counts(model)[0] <= params <= param_counts(model)[0]  # BatchNorms fold into convs
    if method not in ("fp16", "bf16"):
        report = list(csv.DictReader(open(tmp_path / "stage/fallback.csv")))
        quantized_status = "8-bit" if method == "weight_bits" else "int8"
        assert any(r["status"] == quantized_status for r in report)
        assert all(r["reason"] for r in report if r["status"] == "float")


def test_every_registered_quantizer_is_tested_here():
    """A new QUANTIZERS handler (or a runtime with calibrate_int8) must be added to METHODS or PT2E."""
    from compressbench.techniques.quantization.methods import QUANTIZERS

    tested = {f"{m}/{b}" for m, b in {*METHODS, *PT2E}}
    assert set(QUANTIZERS.names()) == tested


def test_pt2e_dynamic_int8_runs_and_stays_close(ctx: StageEnv, tmp_path: Path):
    pytest.importorskip("torchao", reason='the pt2e extra is not installed: pip install "compressbench[pt2e]"')
    model, result = run_stage("lenet300_100", "dynamic_int8", "pt2e", ctx, tmp_path)
    quantized = result.artifact
    x = ctx.example_batch(8, CPU)
    with torch.no_grad():
        assert sqnr(model(x), quantized(x)) >= 20
    assert quantized.runtime == "pt2e-dynamic-int8-compiled" and size_of(quantized) < size_of(model)


@pytest.mark.parametrize("name", models(PT2E_FAST))
def test_pt2e_on_every_model(name: str, ctx: StageEnv, tmp_path: Path):
    pytest.importorskip("torchao", reason='the pt2e extra is not installed: pip install "compressbench[pt2e]"')
    _, fx = run_stage(name, "static_int8", "fx", ctx, tmp_path / "fx")
    model, result = run_stage(name, "static_int8", "pt2e", ctx, tmp_path)
    quantized = result.artifact
    x = ctx.example_batch(8, CPU)
    with torch.no_grad():  # the converted QDQ graph, uncompiled: the numerics inductor lowers to int8 kernels
        y0 = model(x)
        # Deep untrained torchvision ResNets amplify int8 noise (FX reaches only ~7-9 dB on ResNet-50 here), so
        # the bar is FX's own: PT2E is as close to fp32 as FX int8 is, within 3 dB.
        assert sqnr(y0, quantized.converted(x)) >= min(15.0, sqnr(y0, fx.artifact(x)) - 3.0)
    assert quantized.runtime == "pt2e-int8-compiled"
    assert size_of(quantized) < size_of(model)
    assert quantized.macs(x[:1]) == count_macs(model, x[:1])
    assert (tmp_path / "stage/model_int8.pt2").stat().st_size == result.record["program_bytes"]
    assert result.record["int8_ops"] > 0


def test_pt2e_compiled_runs_and_rebuilds_from_its_files(ctx: StageEnv, tmp_path: Path):
    pytest.importorskip("torchao", reason='the pt2e extra is not installed: pip install "compressbench[pt2e]"')
    from compressbench.runtimes.compiled import Pt2eInt8

    model, result = run_stage("lenet5", "static_int8", "pt2e", ctx, tmp_path)
    quantized = result.artifact
    x = ctx.example_batch(4, CPU)
    with torch.no_grad():
        compiled, graph = quantized(x), quantized.converted(x)
        assert sqnr(graph, compiled) >= 25  # inductor's int8 kernels compute what the QDQ graph says
        meta = quantized.save(tmp_path)  # what the stage cache does: fp32 source + observers, no pickle
        again = Pt2eInt8.load(tmp_path, meta, CPU)
        assert torch.equal(again.converted(x), graph)
