"""Benchmark: loading image folders (decode time, peak memory) and the train stage on them against a bare loop.

Rows of the CSV, by ``part``:
  load    each folder, first load (empty decode cache) and cached load, each in a fresh process: seconds,
          images/s, and the peak RSS above the process's own baseline (after its imports) as a multiple of the
          raw uint8 size of the images loaded (target <= 1.5x). ``worker_peak_mb``: the largest decoding worker.
  decode  decode throughput of the first ``--decode-files`` files of each folder: serial, a thread pool and a
          process pool (what loading uses), timed in interleaved rounds, medians.
  loader  TensorLoader alone (gather, crop + flip, normalise) over the train subset: the data cost per batch
          (``ms_per_batch_min``, the fastest epoch, is the least disturbed by other work on the machine).
  train   images/s of the train stage (TensorLoader + engine.train_one_epoch, as bench_train.py times it) and
          of bench_train's bare forward/backward loop over the same images pre-normalised, interleaved; the
          ratio is the median of the per-round ratios (target stage >= 0.95x bare).

    python scripts/bench_data.py --folder cifar10_jpeg=/work/data/cifar10_jpeg:32 \\
        --folder sea_animals=/work/data/sea_animals:64 [--rounds 5] [--out findings/benchmarks/bench_data.csv]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from bench_train import bare_epoch, stage_epoch

from compressbench.data import Split, load_dataset
from compressbench.data.decode import decode_files
from compressbench.data.image_folder import find_root
from compressbench.data.tensors import TensorLoader
from compressbench.models import build_model
from compressbench.pipeline.provenance import machine
from compressbench.results import write_csv

DATASETS = ("cifar10_jpeg", "sea_animals")  # registered folder datasets; any other name loads as image_folder


def dataset_cfg(name: str, root: str, size: int) -> dict[str, Any]:
    return {"name": name if name in DATASETS else "image_folder", "root": root, "image_size": size}


def maxrss_mb(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # kilobytes on Linux


def child_load(name: str, root: str, size: int, cache: str) -> None:
    """In a fresh process: load once, print what it cost as one JSON line."""
    import PIL.Image  # noqa: F401  (the imports a load needs count in the baseline, not in the load)
    import torchvision.datasets.folder  # noqa: F401
    import tqdm.auto  # noqa: F401

    base = maxrss_mb()
    start = time.perf_counter()
    b = load_dataset(dataset_cfg(name, root, size), tempfile.gettempdir(), cache)
    seconds = time.perf_counter() - start
    raw = sum(s.images.numel() for s in (b.train, b.val, b.test)) / 2**20
    n = len(b.train) + len(b.val) + len(b.test)
    print(json.dumps({"seconds": seconds, "images": n, "images_per_s": n / seconds, "raw_mb": raw,
                      "baseline_mb": base, "peak_over_baseline_mb": maxrss_mb() - base,
                      "peak_over_raw": (maxrss_mb() - base) / raw, "worker_peak_mb": maxrss_mb(resource.RUSAGE_CHILDREN),
                      "layout": b.split_info["layout"], "skipped": b.skipped_count, "fingerprint": b.fingerprint}))


def bench_load(name: str, root: str, size: int, cache: Path) -> list[dict[str, Any]]:
    rows = []
    for case in ("first", "cached"):
        proc = subprocess.run([sys.executable, __file__, "--child-load", name, root, str(size), str(cache)],
                              capture_output=True, text=True, check=False)
        if proc.returncode:
            raise RuntimeError(f"loading {root} failed:\n{proc.stderr[-3000:]}")
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append({"part": "load", "dataset": name, "image_size": size, "case": case, **row})
        print(f"{name} {case} load: {row['seconds']:.1f} s, {row['images_per_s']:.0f} img/s, peak "
              f"{row['peak_over_baseline_mb']:.0f} MB over baseline = {row['peak_over_raw']:.2f}x raw", flush=True)
    return rows


def bench_decode(name: str, root: str, size: int, files: int, rounds: int) -> list[dict[str, Any]]:
    top = find_root(name, root, Path(root).parent)
    paths = sorted(str(p) for p in top.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[:files]
    workers = os.cpu_count() or 1
    modes = {"serial": (1, "serial"), "threads": (workers, "thread"), "processes": (workers, "process")}
    decode_files(paths[:64], size)  # warm the page cache and imports
    times: dict[str, list[float]] = {m: [] for m in modes}
    for r in range(rounds):
        for mode, (w, kind) in (modes.items() if r % 2 == 0 else reversed(modes.items())):
            start = time.perf_counter()
            decode_files(paths, size, workers=w, mode=kind, progress=False)
            times[mode].append(time.perf_counter() - start)
    rows = []
    for mode, t in times.items():
        rows.append({"part": "decode", "dataset": name, "image_size": size, "case": mode, "images": len(paths),
                     "workers": modes[mode][0], "seconds": statistics.median(t),
                     "images_per_s": len(paths) / statistics.median(t),
                     "ratio": statistics.median(s / m for s, m in zip(times["serial"], t, strict=True))})
        print(f"{name} decode {mode}: {rows[-1]['images_per_s']:.0f} img/s ({rows[-1]['ratio']:.2f}x serial)")
    return rows


def bench_train(name: str, root: str, size: int, cache: Path, models: list[str], samples: int, batch: int,
                rounds: int) -> list[dict[str, Any]]:
    data = load_dataset(dataset_cfg(name, root, size), tempfile.gettempdir(), cache)
    split = data.train
    n = min(samples, len(split)) // batch * batch
    images, labels = split.images[:n], split.labels[:n]
    subset = Split(images, labels)
    mean, std = torch.tensor(data.mean).view(1, -1, 1, 1), torch.tensor(data.std).view(1, -1, 1, 1)
    pre = (images.float() / 255 - mean) / std
    bare = [(pre[i:i + batch], labels[i:i + batch]) for i in range(0, n, batch)]
    loader = TensorLoader(subset, batch, mean=data.mean, std=data.std, shuffle=True, augment=data.augment,
                          drop_last=True)
    loader_times = []
    for r in range(rounds):
        loader.set_epoch(r)
        start = time.perf_counter()
        for _ in loader:
            pass
        loader_times.append(time.perf_counter() - start)
    common = {"dataset": name, "image_size": size, "images": n, "batch_size": batch, "rounds": rounds,
              "augment": f"crop {data.augment.crop_padding}, flip {data.augment.flip}"}
    batches = n // batch
    rows = [{"part": "loader", "case": "tensorloader", **common, "seconds": statistics.median(loader_times),
             "images_per_s": n / statistics.median(loader_times),
             "ms_per_batch": 1e3 * statistics.median(loader_times) / batches,
             "ms_per_batch_min": 1e3 * min(loader_times) / batches}]
    for model_name in models:
        model = build_model({"name": model_name}, data.num_classes, data.in_channels, data.image_size)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        bare_epoch(model, optimizer, bare), stage_epoch(model, optimizer, loader, 0)  # warm-up
        times: dict[str, list[float]] = {"bare": [], "stage": []}
        for r in range(rounds):  # interleaved, the order alternating
            order = ("bare", "stage") if r % 2 == 0 else ("stage", "bare")
            for loop in order:
                times[loop].append(bare_epoch(model, optimizer, bare) if loop == "bare"
                                   else stage_epoch(model, optimizer, loader, r + 1))
            print(f"{model_name} round {r + 1}: " + ", ".join(f"{k} {n / v[-1]:.0f} img/s" for k, v in times.items()),
                  flush=True)
        ratios = [b / s for b, s in zip(times["bare"], times["stage"], strict=True)]
        for loop, t in times.items():
            rows.append({"part": "train", "case": loop, "model": model_name, **common,
                         "seconds": statistics.median(t), "images_per_s": n / statistics.median(t),
                         "ms_per_batch": 1e3 * statistics.median(t) / batches,
                         "ms_per_batch_min": 1e3 * min(t) / batches,
                         "ratio": statistics.median(ratios) if loop == "stage" else 1.0,
                         "ratio_min": min(ratios) if loop == "stage" else None,
                         "ratio_max": max(ratios) if loop == "stage" else None})
        print(f"{model_name}: stage / bare = {statistics.median(ratios):.3f}x (rounds {min(ratios):.3f}-"
              f"{max(ratios):.3f})", flush=True)
    return rows


def parse_folder(text: str) -> tuple[str, str, int]:
    name, _, rest = text.partition("=")
    root, _, size = rest.rpartition(":")
    if not name or not root or not size.isdigit():
        raise argparse.ArgumentTypeError(f"--folder {text!r}: expected NAME=PATH:SIZE, e.g. sea_animals=/data/sea:64")
    return name, root, int(size)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child-load", nargs=4, metavar=("NAME", "ROOT", "SIZE", "CACHE"), help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=parse_folder, action="append", metavar="NAME=PATH:SIZE",
                        help="a folder to load (repeat); the first one is also trained on")
    parser.add_argument("--decode-files", type=int, default=3000)
    parser.add_argument("--models", nargs="*", default=["lenet5", "resnet20"])
    parser.add_argument("--samples", type=int, default=4096, help="train images per timed epoch")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cache-dir", type=Path, default=None, help="decode cache (default: a fresh temp dir)")
    parser.add_argument("--out", type=Path, default=Path("findings/benchmarks/bench_data.csv"))
    args = parser.parse_args(argv)
    if args.child_load:
        name, root, size, cache = args.child_load
        child_load(name, root, int(size), cache)
        return 0
    if not args.folder:
        parser.error("give at least one --folder NAME=PATH:SIZE")
    rows: list[dict[str, Any]] = []
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench_data_") as tmp:
        cache = args.cache_dir or Path(tmp)
        for name, root, size in args.folder:
            rows += bench_load(name, root, size, cache / name)
        for name, root, size in args.folder:
            rows += bench_decode(name, root, size, args.decode_files, max(args.rounds // 2, 1))
        name, root, size = args.folder[0]
        rows += bench_train(name, root, size, cache / name, args.models, args.samples, args.batch_size, args.rounds)
    # Other work on the machine moves every timing here; the load average says how much there was.
    stamp = {"threads": torch.get_num_threads(), "machine": machine(), "torch_version": torch.__version__,
             "loadavg_start": round(load_before, 2), "loadavg_end": round(os.getloadavg()[0], 2),
             "date": time.strftime("%Y-%m-%d")}
    write_csv(args.out, [{**r, **stamp} for r in rows])
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
