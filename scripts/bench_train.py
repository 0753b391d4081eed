"""Benchmark: the training routes this machine has, and whether the train stage keeps up with a bare loop.

For each model (CIFAR-shaped data unless noted) and each training route — fp32, channels_last, bf16 autocast,
bf16 + channels_last (and, with ``--compile``, torch.compile over the fastest of them) — three loops are timed:
  bare   forward+backward+step over pre-made, pre-normalised tensors in the route's memory format (no data work:
         the ceiling for that route)
  loop   ``engine.train_one_epoch`` over the bare loop's own pre-made batches: the stage loop's overhead alone
  stage  compressbench's ``engine.train_one_epoch`` over ``data.tensors.TensorLoader`` (uint8 in memory,
         batch-wise crop + flip) with the route applied as the train stage applies it (``engine.TrainRoute``)
Every variant starts from the same initial weights and sees the same batches; all of them are timed interleaved
in one process (rounds of one epoch each), and every ratio is the median of the per-round ratios (DESIGN.md §6):
``speedup_vs_bare_fp32`` (the route's gain) and ``stage_over_bare`` (the same route's loop or stage against its bare
loop: < 1 means the stage adds overhead). ``loss_last`` (mean training loss of the last round) and
``val_acc`` (after the last round, fp32 evaluation) show whether a route learns like fp32 on the same batches.
The machine's load average is recorded at start and end: ratios are paired, absolute images/s are not.

    python scripts/bench_train.py [--models lenet5 resnet20 resnet56 alexnet] [--rounds 5] [--samples N]
                                  [--out findings/benchmarks/bench_train.csv]
"""
from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from compressbench.data import Augment
from compressbench.data.synthetic import load_synthetic
from compressbench.data.tensors import TensorLoader
from compressbench.engine import Precision, cross_entropy, train_one_epoch
from compressbench.measure.accuracy import evaluate
from compressbench.models import build_model
from compressbench.pipeline.provenance import machine
from compressbench.results import write_csv

ROUTES = {  # name → (autocast dtype, channels_last)
    "fp32": (None, False), "channels_last": (None, True), "bf16": (torch.bfloat16, False),
    "bf16_channels_last": (torch.bfloat16, True),
}


@dataclass
class Spec:
    model: str
    image_size: int = 32
    channels: int = 3
    classes: int = 10
    batch: int = 128
    samples: int = 2048  # per epoch: about the same seconds per round for every model


SPECS = {"lenet5": Spec("lenet5", samples=8192), "lenet5_digits": Spec("lenet5", 8, 1, 10, 64, 8192),
         "resnet20": Spec("resnet20"), "resnet56": Spec("resnet56", samples=1024),
         "alexnet": Spec("alexnet", 64, 3, 23, 64, 768), "lenet300_100": Spec("lenet300_100", 28, 1, 10, 128, 8192)}


def bare_epoch(model, optimizer, batches, dtype) -> tuple[float, float]:
    model.train()
    losses = []
    start = time.perf_counter()
    for x, y in batches:
        with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
            loss = F.cross_entropy(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())
    seconds = time.perf_counter() - start
    return seconds, float(torch.stack(losses).mean())


def stage_epoch(model, optimizer, loader, epoch: int, dtype) -> tuple[float, float]:
    if hasattr(loader, "set_epoch"):  # a TensorLoader; the "loop" variant passes the pre-made batches
        loader.set_epoch(epoch)
    start = time.perf_counter()
    stats = train_one_epoch(model, loader, optimizer, cross_entropy(), precision=Precision("cpu", dtype))
    return time.perf_counter() - start, stats["train_loss"]


def bench(key: str, n: int | None, rounds: int, compile_: bool) -> list[dict]:
    spec = SPECS[key]
    n = n or spec.samples
    data = load_synthetic({"num_classes": spec.classes, "in_channels": spec.channels,
                           "image_size": spec.image_size, "n_train": n, "n_test": 512, "noise": 0.35}, Path("."),
                          Path("."))
    torch.manual_seed(0)
    init = build_model({"name": spec.model}, spec.classes, spec.channels, spec.image_size)
    split = data.train
    mean = torch.tensor(data.mean).view(1, -1, 1, 1)
    std = torch.tensor(data.std).view(1, -1, 1, 1)
    pre = (split.images.float() / 255 - mean) / std
    routes = dict(ROUTES)
    variants = {}
    for route, (dtype, cl) in routes.items():
        for loop in ("bare", "loop", "stage"):
            model = copy.deepcopy(init)
            if cl:
                model = model.to(memory_format=torch.channels_last)
            fmt = torch.channels_last if cl else torch.contiguous_format
            batches = [(pre[i:i + spec.batch].contiguous(memory_format=fmt), split.labels[i:i + spec.batch])
                       for i in range(0, len(split) - spec.batch + 1, spec.batch)]
            loader = TensorLoader(split, spec.batch, mean=data.mean, std=data.std, shuffle=True,
                                  augment=Augment(4 if spec.image_size >= 32 else 1, True), drop_last=True,
                                  channels_last=cl)
            optimizer = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
            variants[(route, loop)] = (model, optimizer, batches, loader, dtype)
    if compile_:
        model = torch.compile(copy.deepcopy(init).to(memory_format=torch.channels_last))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
        _, _, batches, loader, _ = variants[("bf16_channels_last", "stage")]
        variants[("compile_bf16_channels_last", "stage")] = (model, optimizer, batches, loader, torch.bfloat16)

    def run(v, epoch):
        model, optimizer, batches, loader, dtype = variants[v]
        if v[1] == "bare":
            return bare_epoch(model, optimizer, batches, dtype)
        return stage_epoch(model, optimizer, batches if v[1] == "loop" else loader, epoch, dtype)

    seen = len(variants[("fp32", "bare")][2]) * spec.batch
    load_start = os.getloadavg()[0]
    for v in variants:  # warm-up: allocator, oneDNN primitives, compilation
        run(v, 0)
    times: dict[tuple, list[float]] = {v: [] for v in variants}
    losses: dict[tuple, float] = {}
    for r in range(rounds):
        for v in variants:
            seconds, losses[v] = run(v, r + 1)
            times[v].append(seconds)
        fp32 = times[("fp32", "bare")][-1]
        print(f"{key} round {r + 1}: " + ", ".join(f"{a}/{b} {fp32 / t[-1]:.2f}x" for (a, b), t in times.items()),
              flush=True)
    load_end = os.getloadavg()[0]
    val = TensorLoader(data.test, 256, mean=data.mean, std=data.std)
    rows = []
    for (route, loop), t in times.items():
        bare = times.get((route, "bare"), times[("bf16_channels_last", "bare")])
        rows.append({
            "model": key, "route": route, "loop": loop, "images_per_s": seen / statistics.median(t),
            "speedup_vs_bare_fp32": statistics.median(b / s for s, b in zip(t, times[("fp32", "bare")],
                                                                                strict=True)),
            "stage_over_bare": statistics.median(b / s for s, b in zip(t, bare, strict=True)),
            "ratio_min": min(b / s for s, b in zip(t, times[("fp32", "bare")], strict=True)),
            "ratio_max": max(b / s for s, b in zip(t, times[("fp32", "bare")], strict=True)),
            "loss_last": losses[(route, loop)],
            "val_acc": evaluate(variants[(route, loop)][0], val, topk=(1,))["top1"],
            "rounds": rounds, "samples": seen, "batch_size": spec.batch, "image_size": spec.image_size,
            "threads": torch.get_num_threads(), "load_start": round(load_start, 2), "load_end": round(load_end, 2),
            "machine": machine(), "torch_version": torch.__version__, "date": time.strftime("%Y-%m-%d"),
        })
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["lenet5", "resnet20", "resnet56", "alexnet"],
                        choices=sorted(SPECS))
    parser.add_argument("--samples", type=int, default=None, help="images per epoch (default: per model)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (bf16 + channels_last)")
    parser.add_argument("--out", type=Path, default=Path("findings/benchmarks/bench_train.csv"))
    args = parser.parse_args(argv)
    rows = []
    for name in args.models:
        rows += bench(name, args.samples, args.rounds, args.compile)
        write_csv(args.out, rows)  # as it goes: a cut run keeps the models done
    for r in rows:
        print(f"{r['model']:>13} {r['route']:>26} {r['loop']:>5}: {r['images_per_s']:7.0f} img/s  "
              f"{r['speedup_vs_bare_fp32']:.2f}x bare fp32  stage/bare {r['stage_over_bare']:.2f}  "
              f"loss {r['loss_last']:.3f}  val {r['val_acc']:.1f}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
