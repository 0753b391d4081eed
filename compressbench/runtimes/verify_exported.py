"""Check exported files the way a deployment loads them: plain torch, onnxruntime, openvino — no compressbench.

Run as ``python verify_exported.py DIR SPEC_JSON`` (``exporting.verify`` does). compressbench is blocked from
import, so a file that only loads with our code fails here. Prints one JSON line: per file, whether its logits
on ``DIR/.verify_inputs.npy`` match ``DIR/.verify_expected.npy`` within the format's tolerance.
"""
import json
import sys
from pathlib import Path

sys.modules["compressbench"] = None  # type: ignore[assignment]  # any import of it now raises ImportError
sys.path = [p for p in sys.path if Path(p).resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402


def run_onnx(path, x):
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def run_torch_export(path, x):
    import torch

    module = torch.export.load(str(path)).module()
    with torch.no_grad():
        return module(torch.from_numpy(x)).float().numpy()


def run_torchscript(path, x):
    import torch

    module = torch.jit.load(str(path))
    with torch.no_grad():
        return module(torch.from_numpy(x)).float().numpy()


def run_openvino(path, x):
    import openvino as ov

    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return compiled(x)[compiled.output(0)]


RUNNERS = {"onnx": run_onnx, "torch.export": run_torch_export, "torchscript": run_torchscript,
           "openvino": run_openvino}


def main() -> None:
    directory, spec = Path(sys.argv[1]), json.loads(sys.argv[2])
    x = np.load(directory / ".verify_inputs.npy", allow_pickle=False)
    expected = np.load(directory / ".verify_expected.npy", allow_pickle=False)
    scale = max(1.0, float(np.abs(expected).max()))
    results = {}
    for name, fmt in spec["files"].items():
        try:
            got = np.asarray(RUNNERS[fmt](directory / name, x), dtype=np.float32)
            diff = float(np.abs(got - expected).max())
            agree = float((got.argmax(1) == expected.argmax(1)).mean() * 100)
            results[name] = {"format": fmt, "max_abs_diff": diff, "top1_agreement": agree,
                             "tolerance": spec["tolerance"][name], "ok": diff <= spec["tolerance"][name] * scale}
        except Exception as e:  # noqa: BLE001 — reported per file
            results[name] = {"format": fmt, "ok": False, "error": f"{type(e).__name__}: {str(e)[:300]}"}
    print(json.dumps(results))


if __name__ == "__main__":
    main()
