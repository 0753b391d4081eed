"""Benchmark: what weight sharing costs a training step (the retrain stage after cluster).

For each model, one pruned copy (magnitude, ``--sparsity`` of the weights, one global threshold) is trained as
it is, and another is clustered first (k-means, ``--conv-bits`` / ``--linear-bits``, Han et al.'s 8 / 5 for
AlexNet) so that every forward projects each layer onto its shared values (``sharing.ProjectShared``). Both
start from the same weights and take the same batches (SGD, momentum 0.9, weight decay 5e-4, fp32, batch
``--batch``); each round times ``--steps`` steps of one and then of the other (in turn first), in one process, and
``shared_over_plain`` is the median of the per-round ratios (DESIGN.md §6): 1.0 means sharing is free, 2.0 that
a retrain step takes twice a finetune step. The machine's load average is recorded at start and end.

    python scripts/bench_sharing.py [--models alexnet lenet5] [--rounds 5] [--steps 4]
                                    [--out findings/benchmarks/bench_sharing.csv]
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
from torch import nn

from compressbench.models import build_model
from compressbench.pipeline.provenance import git_sha, machine
from compressbench.results import write_csv
from compressbench.techniques.deepcompression import sharing
from compressbench.techniques.pruning.layers import Spec
from compressbench.techniques.pruning.unstructured import prune_weights_


@dataclass
class Shape:
    image_size: int
    classes: int


SHAPES = {"alexnet": Shape(64, 23), "lenet5": Shape(32, 10), "resnet20": Shape(32, 10)}  # sea animals, CIFAR


def steps_seconds(model: nn.Module, opt: torch.optim.Optimizer, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    start = time.perf_counter()
    for x, y in batches:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
    model(batches[0][0][:1])  # the projection of the last step happens at the next forward: count it too
    return time.perf_counter() - start


def bench(name: str, args: argparse.Namespace) -> dict[str, object]:
    shape = SHAPES[name]
    torch.manual_seed(0)
    plain = build_model({"name": name}, shape.classes, 3, shape.image_size)
    prune_weights_(plain, Spec(args.sparsity, scope="global"), 1.0, "magnitude", torch.Generator().manual_seed(0))
    shared = copy.deepcopy(plain)
    sharing.cluster_model_(shared, lambda _, m: args.linear_bits if isinstance(m, nn.Linear) else args.conv_bits)
    models = {"plain": plain, "shared": shared}
    opts = {k: torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4) for k, m in models.items()}
    g = torch.Generator().manual_seed(1)
    batches = [(torch.randn(args.batch, 3, shape.image_size, shape.image_size, generator=g),
                torch.randint(0, shape.classes, (args.batch,), generator=g)) for _ in range(args.steps)]
    for k in models:  # warm-up: allocator, first projection
        steps_seconds(models[k], opts[k], batches[:1])
    times: dict[str, list[float]] = {k: [] for k in models}
    for r in range(args.rounds):
        for k in (models if r % 2 == 0 else reversed(models)):  # ABBA: neither always runs first
            times[k].append(steps_seconds(models[k], opts[k], batches) / args.steps)
    ratios = sorted(s / p for s, p in zip(times["shared"], times["plain"], strict=True))
    weights = sum(m.weight.numel() for m in sharing.shared_layers(shared).values())
    live = sum(int((getattr(m, sharing.CLUSTERS) >= 0).sum()) for m in sharing.shared_layers(shared).values())
    return {"model": name, "image_size": shape.image_size, "batch": args.batch, "shared_weights": weights,
            "live_fraction": round(live / weights, 4), "conv_bits": args.conv_bits, "linear_bits": args.linear_bits,
            "plain_ms_per_step": round(1e3 * statistics.median(times["plain"]), 2),
            "shared_ms_per_step": round(1e3 * statistics.median(times["shared"]), 2),
            "shared_over_plain": round(statistics.median(ratios), 3), "ratio_min": round(ratios[0], 3),
            "ratio_max": round(ratios[-1], 3), "rounds": args.rounds, "steps": args.steps}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["alexnet", "lenet5"], choices=sorted(SHAPES))
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--sparsity", type=float, default=0.8)
    p.add_argument("--conv-bits", type=int, default=8)
    p.add_argument("--linear-bits", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path("findings/benchmarks/bench_sharing.csv"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    load_start = os.getloadavg()[0]
    rows = []
    for name in args.models:
        rows.append(bench(name, args))
        print(rows[-1], file=sys.stderr)
    load_end = os.getloadavg()[0]
    for r in rows:
        r.update(threads=args.threads, machine=machine(), torch=torch.__version__,
                 commit=git_sha(), load_start=load_start, load_end=load_end)
    write_csv(args.out, rows)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
