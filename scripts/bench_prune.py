"""Benchmark: what pruning buys in measured CPU latency, against what the counts promise.

CIFAR ResNet-56 (3x32x32 inputs, 10 classes), eager PyTorch on the CPU, compressbench's own pruning code:
  structured    l1_filter, 50% of the channels of every group removed physically (torch-pruning dependency
                graph: residual sums included, the classifier's outputs kept)
  unstructured  magnitude, 90% of the conv/linear weights zeroed (one global ranking), tensors keep their shape
Each is timed against the unpruned model in the same process, interleaved (rounds of dense then pruned, the
order alternating), at batch 1 and batch 32 on a fixed number of threads; a speedup is the median of the
per-round ratios (DESIGN.md §6). Sizes: the torch.save'd state_dict and the verified sparse encoding.
Targets (issue 3): structured >= 1.7x measured speedup; unstructured ~1.0x and >= 5x smaller when encoded.
The weights are untrained: latency depends on shapes, not values (and no denormals arise from init).

    python scripts/bench_prune.py [--rounds 7] [--iters 20] [--threads 1] [--out findings/benchmarks/bench_prune.csv]
"""
from __future__ import annotations

import argparse
import copy
import io
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

from compressbench.measure.latency import num_threads, time_model
from compressbench.models import build_model
from compressbench.models.counting import count_macs
from compressbench.pipeline.provenance import machine
from compressbench.results import write_csv
from compressbench.techniques.pruning.encoding import encode_verified
from compressbench.techniques.pruning.layers import Spec, classifier_name
from compressbench.techniques.pruning.structured import prune_channels_
from compressbench.techniques.pruning.unstructured import prune_weights_

TARGETS = {"structured": "speedup >= 1.7", "unstructured": "speedup ~ 1.0 and encoded_ratio >= 5"}


def state_bytes(model: nn.Module) -> int:
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return len(buf.getvalue())


def paired(dense: nn.Module, pruned: nn.Module, x: torch.Tensor, rounds: int, iters: int, warmup: int) -> dict:
    """The core's protocol (measure.latency.time_model): interleaved rounds, speedup = median per-round ratio."""
    t = time_model(lambda: pruned(x), x.device, warmup=warmup, iters=iters, rounds=rounds,
                   reference=lambda: dense(x))
    return {"latency_ms_dense": statistics.median(t.reference_ms),
            "latency_ms_pruned": statistics.median(t.samples_ms), "speedup": t.speedup,
            "speedup_iqr": t.speedup_iqr, "speedup_min": min(t.ratios), "speedup_max": max(t.ratios)}


def variants(model: nn.Module, example: torch.Tensor) -> dict[str, tuple[nn.Module, str, float, str]]:
    classifier = classifier_name(model, example)
    structured = copy.deepcopy(model)
    prune_channels_(structured, Spec(0.5), example, classifier, method="l1_filter")
    unstructured = copy.deepcopy(model)
    prune_weights_(unstructured, Spec(0.9, scope="global"), method="magnitude")
    return {"structured": (structured.eval(), "l1_filter", 0.5, "channels"),
            "unstructured": (unstructured.eval(), "magnitude", 0.9, "weights")}


def bench(args: argparse.Namespace) -> list[dict]:
    torch.manual_seed(0)
    dense = build_model({"name": args.model}, 10, 3, 32).eval()
    example = torch.randn(1, 3, 32, 32)
    dense_params = sum(p.numel() for p in dense.parameters())
    dense_macs, dense_bytes = count_macs(dense, example)[0], state_bytes(dense)
    rows = []
    for name, (pruned, method, amount, unit) in variants(dense, example).items():
        encoded, ok = encode_verified(pruned.state_dict())
        assert ok, "the sparse encoding did not decode back"
        macs = count_macs(pruned, example)[0]
        for batch in args.batch_sizes:
            x = torch.randn(batch, 3, 32, 32)
            iters = args.iters if batch == 1 else max(2, args.iters // 4)
            load_before = os.getloadavg()[0]
            with num_threads(args.threads) as threads:
                timing = paired(dense, pruned, x, args.rounds, iters, args.warmup)
            speedup = timing["speedup"]
            met = (speedup >= 1.7 if name == "structured"
                   else 0.85 <= speedup <= 1.15 and dense_bytes / len(encoded.data) >= 5)
            rows.append({
                "model": args.model, "variant": name, "method": method, "amount": amount, "amount_of": unit,
                "batch_size": batch, "threads": threads, **timing,
                "params_dense": dense_params, "params": sum(p.numel() for p in pruned.parameters()),
                "nonzero_params": sum(int(torch.count_nonzero(p)) for p in pruned.parameters()),
                "macs_dense": dense_macs, "macs": macs, "macs_ratio": dense_macs / macs,
                "size_bytes_dense": dense_bytes, "size_bytes": state_bytes(pruned), "encoded_bytes": len(encoded.data),
                "encoded_ratio": dense_bytes / len(encoded.data), "encode_verified": ok,
                "target": TARGETS[name], "target_met": met, "rounds": args.rounds, "iters": iters,
                "loadavg_before": load_before, "loadavg_after": os.getloadavg()[0], "machine": machine(),
                "torch_version": torch.__version__, "date": time.strftime("%Y-%m-%d %H:%M"),
            })
            r = rows[-1]
            print(f"{name:12s} b{batch:<3d} dense {r['latency_ms_dense']:7.2f} ms  "
                  f"pruned {r['latency_ms_pruned']:7.2f} ms  speedup {speedup:.2f}x (IQR {r['speedup_iqr']:.2f})  MACs ratio {r['macs_ratio']:.2f}  "
                  f"size {r['size_bytes_dense'] / r['size_bytes']:.2f}x  encoded {r['encoded_ratio']:.2f}x  "
                  f"load {load_before:.1f}", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet56")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--iters", type=int, default=20, help="timed calls per round at batch 1 (batch > 1: / 4)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads while timing (DESIGN.md §6)")
    parser.add_argument("--out", type=Path, default=Path("findings/benchmarks/bench_prune.csv"))
    args = parser.parse_args(argv)
    rows = bench(args)
    write_csv(args.out, rows)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
