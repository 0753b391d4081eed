"""Benchmark: does low-rank factorization buy measured CPU latency, or only params and MACs?

Per model (untrained weights: latency depends on shapes, not values) every factorizable layer is replaced by
its truncated-SVD pair keeping ``--ratio`` of its weights (``deepcompression.lowrank``, both conv schemes),
then timed against the dense model in one process, interleaved (the core's protocol,
``measure.latency.time_model``), at batch 1 on ``--threads`` threads and at batch 32. Models: LeNet-5 on
digits-sized 1x8x8 inputs (tiny layers: per-op overhead dominates), ResNet-56 and VGG-16 at 3x32x32. The
stem and the classifier are left alone, as in the shipped resnet56_lowrank / vgg16_lowrank experiments.

    python scripts/bench_lowrank.py [--ratio 0.5] [--rounds 7] [--iters 20] [--threads 1]
        [--out findings/benchmarks/bench_lowrank.csv]
"""
from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import torch

from compressbench.measure.latency import num_threads, quantile, time_model
from compressbench.models import build_model
from compressbench.models.counting import count_macs
from compressbench.pipeline.provenance import machine
from compressbench.results import write_csv
from compressbench.techniques.deepcompression.lowrank import factorize_
from compressbench.techniques.pruning.layers import classifier_name, prunable_layers

CASES = {"lenet5": (10, 1, 8), "resnet56": (10, 3, 32), "vgg16": (10, 3, 32)}  # classes, channels, side


def bench(name: str, scheme: str, args: argparse.Namespace) -> list[dict]:
    classes, channels, side = CASES[name]
    torch.manual_seed(0)
    dense = build_model({"name": name}, classes, channels, side).eval()
    example = torch.randn(1, channels, side, side)
    first = next(iter(prunable_layers(dense)))  # the stem: 1 or 3 input channels, nothing to gain
    factored = copy.deepcopy(dense)
    decisions = factorize_(factored, method="ratio", ratio=args.ratio, conv_scheme=scheme,
                           ignore=[first, classifier_name(dense, example)])
    factored.eval()
    params = [sum(p.numel() for p in m.parameters()) for m in (dense, factored)]
    macs = [count_macs(m, example)[0] for m in (dense, factored)]
    rows = []
    for batch in (1, args.batch_size):
        x = torch.randn(batch, channels, side, side)
        iters = args.iters if batch == 1 else max(2, args.iters // 4)
        with num_threads(args.threads if batch == 1 else None) as threads:
            t = time_model(lambda x=x: factored(x), x.device, warmup=args.warmup, iters=iters, rounds=args.rounds,
                           reference=lambda x=x: dense(x))
        rows.append({
            "model": name, "conv_scheme": scheme, "ratio": args.ratio, "batch_size": batch, "threads": threads,
            "layers_factorized": sum(d.status == "factorized" for d in decisions),
            "layers_skipped": sum(d.status != "factorized" for d in decisions),
            "params_dense": params[0], "params": params[1], "params_ratio": params[0] / params[1],
            "macs_dense": macs[0], "macs": macs[1], "macs_ratio": macs[0] / macs[1],
            "latency_ms_dense": quantile(t.reference_ms, 0.5), "latency_ms_factored": t.p50,
            "speedup": t.speedup, "speedup_iqr": t.speedup_iqr, "rounds": args.rounds, "iters": iters,
            "machine": machine(), "torch_version": torch.__version__, "date": time.strftime("%Y-%m-%d %H:%M"),
        })
        r = rows[-1]
        print(f"{name:9s} {scheme:8s} b{batch:<3d} params {r['params_ratio']:.2f}x fewer  MACs "
              f"{r['macs_ratio']:.2f}x fewer  {r['latency_ms_dense']:8.2f} → {r['latency_ms_factored']:8.2f} ms  "
              f"speedup {r['speedup']:.2f}x (IQR {r['speedup_iqr']:.2f})", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--schemes", nargs="+", default=["channel", "spatial"], choices=["channel", "spatial"])
    parser.add_argument("--ratio", type=float, default=0.5, help="fraction of each layer's weights kept")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="batch-1 threads (batch 32: all)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--out", type=Path, default=Path("findings/benchmarks/bench_lowrank.csv"))
    args = parser.parse_args(argv)
    rows = [row for name in args.models for scheme in args.schemes for row in bench(name, scheme, args)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_csv(args.out, rows)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
