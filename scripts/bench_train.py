"""Benchmark: is the train stage data-bound? Images/s of our training loop against two references.

For lenet5 and resnet20 on CIFAR-shaped data (3x32x32, 10 classes, random-crop + flip augmentation):
  bare        forward+backward+step over pre-made, pre-normalised tensors (no data work at all: the ceiling)
  stage       compressbench's engine.train_one_epoch over data.tensors.TensorLoader (uint8 in memory,
              batch-wise augmentation) — what the train stage runs
  dataloader  the usual torchvision loop: Dataset of PIL images + transforms (RandomCrop, RandomHorizontalFlip,
              ToTensor, Normalize) + torch.utils.data.DataLoader
The three are timed interleaved in one process (rounds of bare/stage/dataloader epochs), and each ratio is the
median of the per-round ratios (DESIGN.md §6). Targets on a 2-core CPU: stage >= 0.9x bare, and >= 1.5x the
DataLoader loop for lenet5.

    python scripts/bench_train.py [--samples 2048] [--rounds 5] [--out findings/benchmarks/bench_train.csv]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from compressbench.data import Augment, Split
from compressbench.data.tensors import TensorLoader
from compressbench.engine import Precision, cross_entropy, train_one_epoch
from compressbench.models import build_model
from compressbench.pipeline.runner import machine
from compressbench.results import write_csv

MEAN, STD = (0.49, 0.48, 0.45), (0.25, 0.24, 0.26)


class PilDataset(Dataset):
    """What torchvision's CIFAR10 does per item: numpy HWC uint8 → PIL image → transforms."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def make_data(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g), torch.randint(0, 10, (n,), generator=g)


def bare_epoch(model, optimizer, batches) -> float:
    model.train()
    start = time.perf_counter()
    for x, y in batches:
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def loader_epoch(model, optimizer, loader) -> float:
    return bare_epoch(model, optimizer, loader)


def stage_epoch(model, optimizer, loader, epoch: int) -> float:
    loader.set_epoch(epoch)
    start = time.perf_counter()
    train_one_epoch(model, loader, optimizer, cross_entropy(), precision=Precision("cpu"))
    return time.perf_counter() - start


def bench(model_name: str, n: int, batch: int, rounds: int, workers: int) -> list[dict]:
    images, labels = make_data(n)
    split = Split(images, labels)
    model = build_model({"name": model_name}, 10, 3, 32)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    ours = TensorLoader(split, batch, mean=MEAN, std=STD, shuffle=True, augment=Augment(4, True), drop_last=True)
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    pre = ((images.float() / 255 - mean) / std)
    bare = [(pre[i:i + batch], labels[i:i + batch]) for i in range(0, n - batch + 1, batch)]
    tf = transforms.Compose([transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
                             transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
    pil = PilDataset(images.permute(0, 2, 3, 1).numpy(), labels.numpy(), tf)
    dl = DataLoader(pil, batch_size=batch, shuffle=True, drop_last=True, num_workers=workers,
                    persistent_workers=workers > 0)
    seen = len(bare) * batch
    # Warm-up one epoch of each (allocator, worker start-up), then interleaved rounds.
    bare_epoch(model, optimizer, bare), stage_epoch(model, optimizer, ours, 0), loader_epoch(model, optimizer, dl)
    times: dict[str, list[float]] = {"bare": [], "stage": [], "dataloader": []}
    for r in range(rounds):
        times["bare"].append(bare_epoch(model, optimizer, bare))
        times["stage"].append(stage_epoch(model, optimizer, ours, r + 1))
        times["dataloader"].append(loader_epoch(model, optimizer, dl))
        print(f"{model_name} round {r + 1}: " + ", ".join(f"{k} {seen / v[-1]:.0f} img/s" for k, v in times.items()),
              flush=True)
    rows = []
    for loop, t in times.items():
        rows.append({
            "model": model_name, "loop": loop, "images_per_s": seen / statistics.median(t),
            "ratio_stage_over_this": statistics.median(b / s for s, b in zip(times["stage"], t, strict=True)),
            "rounds": rounds, "samples": seen, "batch_size": batch, "threads": torch.get_num_threads(),
            "dataloader_workers": workers, "machine": machine(), "torch_version": torch.__version__,
            "date": time.strftime("%Y-%m-%d"),
        })
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["lenet5", "resnet20"])
    parser.add_argument("--samples", type=int, default=4096)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--out", type=Path, default=Path("findings/benchmarks/bench_train.csv"))
    args = parser.parse_args(argv)
    rows = []
    for name in args.models:
        rows += bench(name, args.samples, args.batch_size, args.rounds, args.workers)
    write_csv(args.out, rows)
    for r in rows:
        print(f"{r['model']:>9} {r['loop']:>10}: {r['images_per_s']:8.0f} img/s   "
              f"stage / {r['loop']} = {r['ratio_stage_over_this']:.2f}x")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
