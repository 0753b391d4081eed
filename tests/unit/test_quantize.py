"""The quantize stage through the runner: config checks, the digits run, cache, reports, sizes, unsupported."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from compressbench.config import BadValue, ConfigError
from compressbench.measure.size import size_metrics
from compressbench.models import build_model
from compressbench.pipeline.runner import run
from compressbench.results import read_csv
from compressbench.runtimes import Arch, Eager
from compressbench.stages.quantize import QuantizeConfig
from compressbench.techniques.quantization import Unsupported, fakequant, methods


def with_quantize(cfg, chain=("train", "quantize"), extra=None, **options):
    """``cfg`` with a quick quantize node (``options`` on top), any ``extra`` stage nodes, and ``chain``."""
    OmegaConf.set_struct(cfg, False)
    cfg.quantize = {"stage": "quantize", "calibration_batches": 2, "fp32_routes": ["eager"], **options}
    for name, node in (extra or {}).items():
        cfg[name] = node
    cfg.chain = list(chain)
    return cfg


@pytest.mark.parametrize("override, message", [
    ("++quantize.weight_bits=3", "quantize.weight_bits=3 is not allowed: 8, 4 or 2"),
    ("++quantize.method=int4", "quantize.method='int4' is not allowed: static_int8, dynamic_int8"),
    ("++quantize.backend=tensorrt", "quantize.backend='tensorrt' is not allowed: auto or fx | pt2e | onnxruntime"),
    ("++quantize.method=qat ++quantize.backend=onnxruntime", "quantize.backend='onnxruntime' is not allowed: auto or fx"),
    ("++quantize.method=fp16 ++quantize.backend=fx", "quantize.backend='fx' is not allowed: auto or eager"),
    ("++quantize.observer=entropy", "quantize.observer='entropy' is not allowed: auto or histogram | minmax"),
    ("++quantize.backend=pt2e ++quantize.per_channel=false", "quantize.per_channel=False is not allowed"),
    ("++quantize.calibration_batches=0", "quantize.calibration_batches=0 is not allowed: >= 1"),
    ("++quantize.fp32_routes=[tpu]", "quantize.fp32_routes=['tpu'] is not allowed"),
    ("++quantize.method=qat ++quantize.epochs=0", "quantize.epochs=0 is not allowed: >= 1 for qat"),
])
def test_bad_values_fail_before_any_work(make_cfg, tmp_path: Path, override: str, message: str):
    # ``++``: add or override, so this holds before and after the primary config lists a quantize stage.
    cfg = make_cfg("+experiment=lenet5_quant", "dataset=synthetic", "chain=[train,finetune,quantize]",
                   *override.split())
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("|", r"\|")):
        run(cfg, tmp_path / "run")
    assert not (tmp_path / "data").exists() and not (tmp_path / "run" / "results.csv").exists()


def test_typo_in_a_quantize_key_fails_at_composition(make_cfg):
    with pytest.raises(ConfigCompositionException, match="weight_bitz"):
        make_cfg("+experiment=lenet5_quant", "quantize.weight_bitz=4")


def test_digits_int8_keeps_accuracy_and_shrinks(make_cfg, tmp_path: Path):
    """The default data, trained briefly: int8 within 2 points of fp32, 2x+ smaller, every file and column."""
    out = tmp_path / "run"
    cfg = make_cfg("+experiment=lenet5_quant", "chain=[train,finetune,quantize]", "dataset=digits",
                   "train.epochs=8", "train.batch_size=64",
                   "finetune.epochs=1", "++quantize.fp32_routes=[eager,onnxruntime]")
    rows = run(cfg, out)
    fp32, q = rows[1], rows[2]
    assert q["status"] == "ok" and q["runtime"] == "fx-int8" and q["device"] == "cpu"
    assert fp32["test_acc"] > 85 and abs(q["test_acc"] - fp32["test_acc"]) <= 2.0
    assert q["size_bytes"] * 2 < fp32["size_bytes"]  # the int8 weights; the ratio is of the runnable files:
    assert q["deployable_file"].startswith("model_int8.ts") and q["deployable_bytes"] > q["size_bytes"]
    assert q["compression_ratio"] == pytest.approx(fp32["deployable_bytes"] / q["deployable_bytes"])
    assert q["macs"] == fp32["macs"] and q["params"] > 0.9 * fp32["params"]
    assert q["int8_ops"] >= 5 and q["float_ops"] == 0 and q["calibration_images"] == 512
    assert q["best_fp32_runtime"] in ("eager", "onnxruntime")  # chosen on pooled samples, its own ratio kept:
    assert q["speedup_vs_reference"] > 0 and q["speedup_vs_best_fp32"] == q[f"speedup_vs_{q['best_fp32_runtime']}_fp32"]
    stage = out / "stages/02_quantize"
    report = list(csv.DictReader(open(stage / "fallback.csv")))
    assert {r["status"] for r in report} >= {"int8", "fused"}
    state = torch.load(stage / "model_int8_state_dict.pt", weights_only=True)
    assert any(t.dtype == torch.qint8 for t in state.values() if isinstance(t, torch.Tensor))
    written = read_csv(out / "results.csv")[2]
    assert written["runtime"] == "fx-int8" and float(written["speedup_vs_best_fp32"]) > 0


@pytest.mark.parametrize("backend", ["fx", "onnxruntime"])
def test_quantized_models_come_back_from_the_cache(make_cfg, tmp_path: Path, backend: str):
    if backend == "onnxruntime":
        pytest.importorskip("onnxruntime", reason='onnxruntime is not installed: pip install onnxruntime')
    first = run(with_quantize(make_cfg(), backend=backend), tmp_path / "a")
    second = run(with_quantize(make_cfg(), backend=backend), tmp_path / "b")
    assert [r["cache_hit"] for r in second] == [True, True]
    assert second[1]["test_acc"] == first[1]["test_acc"] and second[1]["size_bytes"] == first[1]["size_bytes"]
    assert second[1]["runtime"] == first[1]["runtime"] == ("fx-int8" if backend == "fx" else "onnxruntime-int8")
    assert second[1]["int8_ops"] == first[1]["int8_ops"] > 0  # recorded fields come back too


def test_onnxruntime_accuracy_is_measured_on_the_exported_file(make_cfg, tmp_path: Path):
    pytest.importorskip("onnxruntime", reason='onnxruntime is not installed: pip install onnxruntime')
    out = tmp_path / "run"
    rows = run(with_quantize(make_cfg("train.epochs=6"), backend="onnxruntime", fp32_routes=[]), out)
    fp32, q = rows
    assert q["runtime"] == "onnxruntime-int8" and abs(q["test_acc"] - fp32["test_acc"]) <= 3.0
    data = (out / "stages/01_quantize/model_int8.onnx").read_bytes()
    assert q["size_bytes"] == len(data) and q["onnx_fp32_bytes"] > len(data)
    assert (out / "stages/01_quantize/model_fp32.onnx").is_file()
    assert 0.05 < q["speedup_vs_reference"] < 50  # against ONNX Runtime fp32, paired: a measurement, not a constant
    assert q["reference_runtime"] == "onnxruntime-fp32" and "speedup" not in q  # the row names its baseline


@pytest.mark.parametrize("backend", ["fx", "onnxruntime"])
def test_trained_residual_net_keeps_its_accuracy_in_int8(make_cfg, tmp_path: Path, backend: str):
    """ResNet-8 (residual adds, BatchNorm folding) trained on RGB synthetic data: int8 within 5 points."""
    if backend == "onnxruntime":
        pytest.importorskip("onnxruntime", reason='onnxruntime is not installed: pip install onnxruntime')
    cfg = make_cfg("model=resnet8", "dataset.in_channels=3", "dataset.image_size=16", "train.epochs=4",
                   "train.lr=0.05", "measure.latency=false")
    fp32, q = run(with_quantize(cfg, backend=backend, calibration_batches=4), tmp_path / "run")
    assert fp32["test_acc"] > 60 and abs(q["test_acc"] - fp32["test_acc"]) <= 5.0
    assert q["fused_ops" if backend == "fx" else "int8_ops"] > 0 and q["float_ops"] == 0


def test_already_quantized_input_is_refused_before_any_work(make_cfg, tmp_path: Path):
    """Chain order is a property of the config (stages/order.py): no training first, then an unsupported row."""
    cfg = with_quantize(make_cfg(), chain=("train", "quantize", "again"), extra={"again": {"stage": "quantize"}})
    with pytest.raises(ConfigError, match="'again' .* put 'again' before 'quantize', or drop one of them"):
        run(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_an_unsupported_stage_is_a_row_not_a_crash(make_cfg, tmp_path: Path):
    out = tmp_path / "run"
    cfg = with_quantize(make_cfg(), method="weight_bits", epochs=0, skip=["features", "classifier"])
    rows = run(cfg, out)  # an unsupported stage is a result, not a crash: the job succeeds
    assert [r["status"] for r in rows] == ["ok", "unsupported"]
    assert "has none outside quantize.skip" in rows[1]["error"]
    assert rows[1].get("test_acc") is None  # nothing measured: the stage made no model
    assert "## Unsupported stages" in (out / "summary.md").read_text()  # yet the summary lists it


def test_unsupported_names_what_cannot_be_traced():
    class Branchy(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(x) if x.sum() > 0 else -self.fc(x)  # data-dependent control flow

    with pytest.raises(Unsupported, match="FX graph mode cannot trace Branchy.*backend=onnxruntime"):
        methods.static_fx(eager(Branchy()), QuantizeConfig(), None, [torch.randn(4, 4)])
    with pytest.raises(Unsupported, match="dynamic int8 quantizes Linear.*has none"):
        methods.dynamic_fx(eager(torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3))), QuantizeConfig(), None, [])


def eager(module: torch.nn.Module, model: str = "lenet5") -> Eager:
    """A module as the eager deployable a quantize handler takes (its arch only matters for saving)."""
    return Eager(module, Arch({"name": model}, 10, 3, 32))


def test_fp16_overflow_is_unsupported_not_a_nan_model():
    big = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Flatten())
    with torch.no_grad():
        big[0].weight.fill_(1e5)
    with pytest.raises(Unsupported, match="float16 overflows.*method=bf16"):
        methods.cast(eager(big), torch.float16, torch.ones(2, 4))
    assert torch.isfinite(methods.cast(eager(big), torch.bfloat16, torch.ones(2, 4)).artifact(torch.ones(2, 4))).all()


def test_skip_keeps_layers_float_and_the_report_says_why(make_cfg, tmp_path: Path):
    out = tmp_path / "run"
    rows = run(with_quantize(make_cfg(), skip=["classifier.4"]), out)
    report = {r["name"]: r for r in csv.DictReader(open(out / "stages/01_quantize/fallback.csv"))}
    assert report["classifier.4"]["status"] == "float" and "quantize.skip" in report["classifier.4"]["reason"]
    assert rows[1]["float_ops"] >= 1 and "classifier.4" in rows[1]["float_op_names"]
    with pytest.raises(BadValue, match=r"quantize.skip='classifier.9' is not allowed: a module of LeNet5"):
        run(with_quantize(make_cfg(), skip=["classifier.9"]), tmp_path / "bad")  # before any training
    assert not (tmp_path / "bad/results.csv").exists()


def test_static_int8_of_resnet20_is_over_3x_smaller():
    torch.manual_seed(0)
    model = build_model({"name": "resnet20"}, 10, 3, 32).eval()
    batches = [torch.randn(16, 3, 32, 32)]
    fp32 = size_metrics(eager(model, "resnet20"))["size_bytes"]
    fx = methods.static_fx(eager(model, "resnet20"), QuantizeConfig(observer="minmax"), None, batches)
    assert fp32 / size_metrics(fx.artifact)["size_bytes"] >= 3.0
    pytest.importorskip("onnxruntime", reason='onnxruntime is not installed: pip install onnxruntime')
    ort = methods.ort_static(eager(model, "resnet20"), QuantizeConfig(backend="onnxruntime"), None, batches)
    assert fp32 / size_metrics(ort.artifact)["size_bytes"] >= 3.0


@pytest.mark.parametrize("bits", [8, 4, 2])
def test_weight_bits_encoding_is_packed_and_decodes(bits: int):
    torch.manual_seed(0)
    model = build_model({"name": "lenet5"}, 10, 1, 8)
    layers = fakequant.attach_(model, bits)
    fakequant.bake_(model)
    levels = [torch.unique(m.weight[0]).numel() for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert max(levels) <= 2**bits
    blob = fakequant.encode(model, dict.fromkeys(layers, bits))
    weights = sum(m.weight.numel() for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)))
    channels = sum(m.weight.shape[0] for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)))
    others = sum(t.numel() for k, t in model.state_dict().items() if not k.endswith("weight"))
    honest = weights * bits / 8 + channels * 5 + others * 4
    assert honest <= len(blob) < honest + 2000  # bits x params + scales/zero points + float tensors + a header
    decoded = fakequant.decode(blob)
    for key, t in model.state_dict().items():
        assert torch.allclose(decoded[key], t, rtol=1e-5, atol=1e-7), key


def test_packing_roundtrip():
    rng = np.random.default_rng(0)
    for bits in (2, 4, 8):
        values = rng.integers(0, 2**bits, size=37).astype(np.uint8)
        data = fakequant.pack(values, bits)
        assert len(data) == -(-37 * bits // 8)
        assert (fakequant.unpack(data, bits, 37) == values).all()


def test_weight_bits_sweep_point_through_the_runner(make_cfg, tmp_path: Path):
    rows = run(with_quantize(make_cfg("train.epochs=6"), method="weight_bits", weight_bits=4, epochs=1,
                             batch_size=16), tmp_path / "run")
    fp32, q = rows
    assert q["status"] == "ok" and q["weight_bits"] == 4 and q["runtime"] == "eager"
    assert q["encoded_bytes"] < fp32["size_bytes"] / 5  # 4-bit codes: about 8x smaller than fp32
    assert q["size_bytes"] == pytest.approx(fp32["size_bytes"], rel=0.01)  # still an fp32 artifact
    assert q["test_acc"] > 50  # 4 classes: well above chance after a 4-bit finetune
    blob = (tmp_path / "run/stages/01_quantize/weights_w4.bin").read_bytes()
    assert len(blob) == q["encoded_bytes"] and "features.0.weight" in fakequant.decode(blob)
