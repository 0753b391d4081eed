"""Every RUNTIMES entry keeps the Deployable contract: it runs, says what it ships, rebuilds from its own files
without unpickling, and exports files that load without compressbench."""
from __future__ import annotations

import importlib.util
import statistics
from pathlib import Path

import pytest
import torch

from compressbench.measure.latency import num_threads, time_model
from compressbench.models import build_model
from compressbench.models.counting import count_macs
from compressbench.runtimes import RUNTIMES, Arch, Deployable, Eager, Int8Calibrating, exporting
from compressbench.runtimes.compiled import Compiled
from compressbench.runtimes.onnxruntime import Ort
from compressbench.stages.quantize import QuantizeConfig
from compressbench.techniques.quantization import methods

CPU = torch.device("cpu")
ARCH = Arch({"name": "lenet5"}, 4, 1, 8)
COMPILES = {"compiled", "pt2e-int8"}  # torch.compile on first call: tens of seconds, so their runs are slow


def fp32() -> Eager:
    torch.manual_seed(0)
    model = build_model(ARCH.model, 4, 1, 8)
    with torch.no_grad():  # BatchNorm-free LeNet: a few steps of nothing; keep the init, in eval mode
        model.eval()
    return Eager(model, ARCH)


def batches() -> list[torch.Tensor]:
    torch.manual_seed(1)
    return [torch.randn(16, 1, 8, 8) for _ in range(2)]


def make(kind: str) -> Deployable:
    """A deployable of ``kind`` made the way the pipeline makes it."""
    runtime = RUNTIMES.get(kind)
    if not runtime.available():
        pytest.skip(f"{kind} is not installed here: {runtime.install_hint()}")
    base, data = fp32(), batches()
    if kind == "eager":
        return base
    if kind == "cast":
        return methods.cast(base, torch.bfloat16, data[0]).artifact
    if kind == "eager-dynamic-int8":
        return methods.dynamic_fx(base, QuantizeConfig(method="dynamic_int8"), None, data).artifact
    if kind == "compiled":
        return Compiled.from_fp32(base, data[0][:1])
    if kind == "fx-int8":
        return methods.static_fx(base, QuantizeConfig(observer="minmax"), None, data).artifact
    if kind == "pt2e-int8":
        if importlib.util.find_spec("torchao") is None:
            pytest.skip('pt2e needs torchao: pip install "compressbench[pt2e]"')
        return methods.pt2e_static(base, QuantizeConfig(backend="pt2e", observer="minmax"), None, data).artifact
    if kind == "onnxruntime":
        return methods.ort_static(base, QuantizeConfig(backend="onnxruntime"), None, data).artifact
    if kind == "openvino":
        return methods.QUANTIZERS.get("static_int8/openvino").fn(base, QuantizeConfig(backend="openvino"), None,
                                                                  data).artifact
    raise AssertionError(f"add a way to make runtime {kind!r} to this test")


def runs(kind: str) -> list:
    return [pytest.param(k, marks=pytest.mark.slow) if k in COMPILES and kind == "call" else k
            for k in RUNTIMES.names()]


@pytest.mark.parametrize("kind", runs("call"))
def test_runs_and_says_what_it_ships(kind: str):
    artifact = make(kind).eval()
    x = batches()[0]
    with torch.no_grad():
        y = artifact(x)
    assert y.shape == (16, 4) and y.dtype == torch.float32 and torch.isfinite(y).all()
    base = fp32()
    assert 0 < len(artifact.artifact_bytes())
    params, nonzero = artifact.param_counts()
    assert 0 < nonzero <= params <= base.param_counts()[0] * 1.01
    assert artifact.macs(x[:1])[0] == count_macs(base.module, x[:1])[0]
    reference = artifact.reference(base)
    assert isinstance(reference, Deployable)
    call = reference.timer(x[:1])
    call()  # the same-runtime fp32 reference runs on the same input


@pytest.mark.parametrize("kind", RUNTIMES.names())
def test_rebuilds_from_its_own_files(kind: str, tmp_path: Path):
    artifact = make(kind)
    meta = artifact.save(tmp_path)
    for path in tmp_path.iterdir():  # whatever was written is tensors, ONNX or OpenVINO IR: never a pickle
        if path.suffix == ".pt":
            torch.load(path, weights_only=True)
    again = RUNTIMES.get(kind).load(tmp_path, meta, CPU)
    assert again.runtime == artifact.runtime
    if kind != "openvino":  # re-serialised IR names, orders and folds its nodes afresh: the logits below decide
        assert again.artifact_bytes() == artifact.artifact_bytes()
    if kind in COMPILES:
        return  # same bytes; running would compile
    x = batches()[1]
    with torch.no_grad():
        assert torch.equal(again.eval()(x), artifact.eval()(x))


@pytest.mark.parametrize("kind", [pytest.param(k, marks=pytest.mark.slow) if k not in ("eager", "onnxruntime")
                                  else k for k in RUNTIMES.names()])
def test_exports_files_that_load_without_compressbench(kind: str, tmp_path: Path):
    artifact = make(kind).eval()
    x = batches()[0]
    exported = artifact.export(tmp_path, x[:2])
    assert exported.files, exported.skipped
    with torch.no_grad():
        expected = artifact(x)
    checks = exporting.verify(tmp_path, exported, x, expected)
    assert set(checks) == set(exported.files)
    assert all(c["ok"] for c in checks.values()), checks


def test_the_exported_file_times_like_the_runtime_it_came_from(tmp_path: Path):
    """ORT int8 loaded back from its exported file vs the in-run artifact, paired: the same speed within noise."""
    artifact = make("onnxruntime")
    exported = artifact.export(tmp_path, batches()[0][:2])
    name = next(iter(exported.files))
    loaded = Ort((tmp_path / name).read_bytes(), ARCH, artifact.runtime, artifact.macs(batches()[0][:1]))
    x = batches()[0][:1]
    with num_threads(1):
        timing = time_model(loaded.timer(x), CPU, warmup=5, iters=30, rounds=6, reference=artifact.timer(x))
    assert 0.6 <= statistics.median(timing.ratios) <= 1.6, timing.ratios


def test_verifier_cannot_import_compressbench(tmp_path: Path):
    """The check's process is really without compressbench: a file format that needs it fails there."""
    import subprocess
    import sys

    code = ("import runpy, sys; sys.argv = ['v', '.', '{}']; "
            f"runpy.run_path({str(exporting.VERIFIER)!r}, run_name='not_main'); import compressbench")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode != 0 and "compressbench" in proc.stderr


@pytest.mark.parametrize("kind", [k for k in RUNTIMES.names() if isinstance(RUNTIMES.get(k), Int8Calibrating)])
def test_a_runtime_that_calibrates_int8_is_a_static_int8_backend(kind: str):
    """Such a runtime is declared by name in ``quantization.methods`` (known before torch is imported), with the
    packages and pip extra the runtime itself requires."""
    key = f"static_int8/{kind}"
    assert key in methods.QUANTIZERS, f"add register('static_int8', '{kind}', ...)(calibrated_by_runtime('{kind}'))"
    handler, (packages, extra) = methods.QUANTIZERS.get(key), RUNTIMES.get(kind).requires
    assert (handler.packages, handler.extra) == (packages, extra)
