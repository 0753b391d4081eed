"""Benchmark: what static int8 buys on each runtime — latency at batch 1 and 32, size, and logit error.

Models: resnet20, resnet56 and vgg16 at 32x32, resnet50 at 224x224 (10 classes, random weights with BatchNorm
statistics gathered on random inputs, so activations have a trained network's scale). Backends, each int8 model
against the fp32 model on the same runtime:
  fx           FX graph-mode static int8 (torch.ao, x86 engine) vs eager fp32
  pt2e         PT2E int8 (torchao X86InductorQuantizer) compiled vs torch.compile'd fp32 (inductor, freezing)
  onnxruntime  ONNX Runtime QDQ int8 (per-channel) vs ONNX Runtime fp32
Every ratio is timed in this one process, interleaved (rounds of fp32 then int8, alternating which goes first),
and is the median of the per-round ratios, with its IQR (DESIGN.md §6). Batch 1 runs on ``--threads`` threads
(default 1, as measure does), batch 32 on all cores. ``speedup_vs_best_fp32`` pairs each int8 model at batch 1
with the fastest fp32 runtime (found by timing the three fp32 runtimes against each other first).
Sizes: fp32 state_dict vs the int8 artifact (int8 state_dict, or the ONNX files' own ratio for onnxruntime).
Targets (issue 4): static int8 on ResNet-56 >= 3x faster than fp32 at batch 1 and >= 3.8x smaller.

    python scripts/bench_quantize.py [--models resnet20 resnet56 vgg16 resnet50] [--backends fx pt2e onnxruntime]
        [--rounds 3] [--iters 10] [--out findings/benchmarks/bench_quantize.csv]
"""
from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from compressbench.measure.latency import num_threads, quantile, time_model
from compressbench.models import build_model
from compressbench.pipeline.provenance import machine
from compressbench.results import write_csv
from compressbench.runtimes import RUNTIMES, Arch, Deployable, Eager
from compressbench.stages.quantize import QuantizeConfig
from compressbench.techniques.quantization import methods

IMAGE = {"resnet20": 32, "resnet56": 32, "vgg16": 32, "resnet50": 224}
SAME_RUNTIME = {"fx": "eager", "pt2e": "compiled", "onnxruntime": "onnxruntime", "openvino": "openvino"}
CPU = torch.device("cpu")


def make_model(name: str, size: int, seed: int = 0) -> nn.Module:
    """Random weights, BatchNorm running statistics gathered on random inputs (cumulative average)."""
    torch.manual_seed(seed)
    model = build_model({"name": name}, 10, 3, size)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.momentum = None
    model.train()
    with torch.no_grad():
        for _ in range(4):
            model(torch.randn(8, 3, size, size))
    return model.eval()


def quantize(backend: str, model: Eager, batches: list[torch.Tensor], observer: str) -> methods.Result:
    """The quantize stage's own (method, backend) handler, as the stage would call it."""
    cfg = QuantizeConfig(method="static_int8", backend=backend,
                         observer=observer if backend not in ("onnxruntime", "openvino") else "auto")
    return cfg.handler.fn(model, cfg, None, batches)


def paired(candidate: Deployable, reference: Deployable, x: torch.Tensor, threads: int | None, args: Any,
           iters: int, warmup: int) -> dict[str, float]:
    """The core's protocol (measure.latency.time_model): interleaved rounds of reference and candidate
    (alternating which goes first), speedup = median of per-round ratios of medians."""
    with num_threads(threads) as used:
        t = time_model(candidate.timer(x), CPU, warmup=warmup, iters=iters, rounds=args.rounds,
                       reference=reference.timer(x))
    return {"fp32_ms_p50": quantile(t.reference_ms, 0.5), "int8_ms_p50": t.p50, "speedup": t.speedup,
            "speedup_iqr": t.speedup_iqr, "threads": used, "rounds": args.rounds, "iters": iters}


def fastest_fp32(routes: dict[str, Deployable], x: torch.Tensor, args: Any) -> str:
    """The fp32 runtime with the lowest batch-1 latency, each timed paired against eager."""
    speed = {"eager": 1.0}
    for name, route in routes.items():
        if name != "eager":
            with num_threads(args.threads):
                speed[name] = time_model(route.timer(x), CPU, warmup=args.warmup, iters=args.iters,
                                         rounds=args.rounds, reference=routes["eager"].timer(x)).speedup
    return max(speed, key=speed.__getitem__)


def bench_model(name: str, args: Any) -> list[dict[str, Any]]:
    size = IMAGE[name]
    model = make_model(name, size)
    x1, xb = torch.randn(1, 3, size, size), torch.randn(args.batch_size, 3, size, size)
    batches = [torch.randn(args.calibration_size, 3, size, size) for _ in range(args.calibration_batches)]
    fp32 = Eager(model, Arch({"name": name}, 10, 3, size))
    routes = {r: RUNTIMES.get(r).from_fp32(Eager(copy.deepcopy(model), fp32.arch), x1)
              for r in ("eager", "compiled", "onnxruntime", *(("openvino",) if "openvino" in args.backends else ()))}
    best = fastest_fp32(routes, x1, args)
    print(f"[{name}] fastest fp32 runtime at batch 1: {best}", flush=True)
    fp32_bytes = len(fp32.artifact_bytes())
    rows = []
    for backend in args.backends:
        result = quantize(backend, fp32, batches, args.observer)
        int8 = result.artifact
        with torch.no_grad():
            ref, out = model(xb), int8(xb)
        artifact = len(int8.artifact_bytes())
        base = {"model": name, "image": size, "backend": backend, "runtime": int8.runtime,
                "fp32_runtime": routes[SAME_RUNTIME[backend]].runtime,
                "observer": args.observer, "fp32_bytes": fp32_bytes, "int8_bytes": artifact,
                "size_ratio": fp32_bytes / artifact,
                "onnx_size_ratio": (result.info["onnx_fp32_bytes"] / artifact) if backend == "onnxruntime" else None,
                "max_logit_diff": float((out - ref).abs().max()), "max_logit_abs": float(ref.abs().max()),
                "int8_ops": sum(r["status"] == "int8" for r in result.report),
                "float_ops": sum(r["status"] == "float" for r in result.report)}
        same = routes[SAME_RUNTIME[backend]]
        for batch, x, threads, iters, warmup in ((1, x1, args.threads, args.iters, args.warmup),
                                                 (args.batch_size, xb, None, max(2, args.iters // 5), 1)):
            # Warm-up includes torch.compile's compile for each new batch size (pt2e, compiled fp32).
            row = {**base, "batch": batch, **paired(int8, same, x, threads, args, iters, max(warmup, 1))}
            if batch == 1:
                vs_best = paired(int8, routes[best], x, threads, args, iters, warmup)
                row.update(best_fp32_runtime=best, speedup_vs_best_fp32=vs_best["speedup"],
                           best_fp32_ms_p50=vs_best["fp32_ms_p50"])
            rows.append(row)
            print(f"[{name}] {backend:11s} b{batch:<3d} fp32 {row['fp32_ms_p50']:8.2f} ms  int8 "
                  f"{row['int8_ms_p50']:8.2f} ms  speedup {row['speedup']:.2f}x (IQR {row['speedup_iqr']:.2f})"
                  f"  size {base['size_ratio']:.2f}x", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(IMAGE), choices=list(IMAGE))
    parser.add_argument("--backends", nargs="+", default=["fx", "onnxruntime", "pt2e"],
                        choices=["fx", "pt2e", "onnxruntime", "openvino"])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="threads at batch 1 (batch B uses all cores)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iters", type=int, default=10, help="timed calls per round at batch 1 (batch B: / 5)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--observer", default="minmax", help="activation observer (minmax calibrates fastest)")
    parser.add_argument("--calibration-batches", type=int, default=4)
    parser.add_argument("--calibration-size", type=int, default=16)
    parser.add_argument("--out", type=Path, default=Path("findings/benchmarks/bench_quantize.csv"))
    args = parser.parse_args(argv)
    rows = []
    for name in args.models:
        rows += bench_model(name, args)
    for row in rows:
        row.update(machine=machine(), torch_version=torch.__version__)
    write_csv(args.out, rows)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
