"""Benchmark: what distillation costs per epoch, and what it buys over training the student from scratch.

Part 1, timing (interleaved in one process, DESIGN.md §6): seconds per training epoch of the same student with
  plain       cross-entropy on labels (what a train stage runs)
  kd_cached   Hinton KD with the teacher's logits precomputed once for the train split (no augmentation):
              what the distill stage runs when augmentation is off. Target: <= 1.2x plain.
  kd_live     Hinton KD with the teacher run on every batch (what augmentation forces), for contrast
Each round times each variant for the same whole number of epochs (about --min-seconds of plain training; the
order rotates every round); a ratio is the median of the per-round ratios, with its interquartile range. The
one-off cost of the logit table is reported beside it.
Cases: scikit-learn digits (small_cnn width 4 ← resnet20, batch 64) and CIFAR-shaped random data
(resnet20 ← resnet56, batch 128); the teachers' weights do not matter for timing.

Part 2, accuracy: the ``digits_kd`` experiment (offline) run for several seeds through the real runner —
teacher (resnet20), the student from scratch, the student with KD (same initial weights) — test top-1.

    python scripts/bench_distill.py [--rounds 5] [--seeds 0 1 2] [--timing-only]
                                    [--out findings/benchmarks/bench_distill.csv]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from compressbench.data import Split, load_dataset
from compressbench.data.tensors import TensorLoader
from compressbench.engine import Precision, cross_entropy, train_one_epoch
from compressbench.measure.latency import quantile
from compressbench.models import build_model
from compressbench.pipeline.provenance import machine
from compressbench.results import write_csv
from compressbench.techniques.distillation import DistillLoss

VARIANTS = ("plain", "kd_cached", "kd_live")


def digits_case() -> dict[str, Any]:
    data = load_dataset({"name": "digits"}, Path(tempfile.gettempdir()))
    return {"case": "digits: small_cnn(w4) <- resnet20", "split": data.train, "mean": data.mean,
            "std": data.std, "student": {"name": "small_cnn", "width": 4}, "teacher": {"name": "resnet20"},
            "classes": data.num_classes, "batch": 64}


def cifar_case(n: int) -> dict[str, Any]:
    g = torch.Generator().manual_seed(0)
    split = Split(torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g),
                  torch.randint(0, 10, (n,), generator=g))
    return {"case": f"cifar-shaped random ({n}): resnet20 <- resnet56", "split": split, "mean": (0.49, 0.48, 0.45),
            "std": (0.25, 0.24, 0.26), "student": {"name": "resnet20"}, "teacher": {"name": "resnet56"},
            "classes": 10, "batch": 128}


def time_case(case: dict[str, Any], rounds: int, min_seconds: float) -> list[dict[str, Any]]:
    split, batch = case["split"], case["batch"]
    shape = tuple(split.images.shape[1:])
    torch.manual_seed(0)
    teacher = build_model(case["teacher"], case["classes"], shape[0], shape[1]).eval()

    def loader(index: bool) -> TensorLoader:
        return TensorLoader(split, batch, mean=case["mean"], std=case["std"], shuffle=True, drop_last=True,
                            return_index=index)

    start = time.perf_counter()
    with torch.no_grad():
        table = torch.cat([teacher(x) for x, _ in TensorLoader(split, 256, mean=case["mean"], std=case["std"])])
    table_s = time.perf_counter() - start
    kd = {"temperature": 4.0, "alpha": 0.9, "beta": 0.0, "label_smoothing": 0.0}
    setups = {  # variant → (criterion, loader); each trains its own copy of the same student
        "plain": (cross_entropy(), loader(False)),
        "kd_cached": (DistillLoss(["kd"], teacher, table=table, **kd), loader(True)),
        "kd_live": (DistillLoss(["kd"], teacher, **kd), loader(True)),
    }
    students = {v: build_model(case["student"], case["classes"], shape[0], shape[1]) for v in VARIANTS}
    optims = {v: torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9) for v, m in students.items()}

    counter = [0]

    def epochs(variant: str, n: int) -> float:
        """Seconds per epoch over ``n`` epochs (new shuffles each)."""
        criterion, batches = setups[variant]
        total = 0.0
        for _ in range(n):
            counter[0] += 1
            batches.set_epoch(counter[0])
            total += train_one_epoch(students[variant], batches, optims[variant], criterion,
                                     precision=Precision("cpu"))["seconds"]
        return total / n

    # Warm-up (allocator, first calls), which also sizes a timed unit: enough epochs that a plain unit takes
    # about min_seconds, so a tiny model's 50 ms epochs are not timed one at a time.
    for v in VARIANTS:
        epochs(v, 1)
    per_unit = max(1, round(min_seconds / epochs("plain", 1)))
    times: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for r in range(rounds):
        order = VARIANTS[r % 3:] + VARIANTS[:r % 3]
        for v in order:
            times[v].append(epochs(v, per_unit))
        print(f"{case['case']} round {r + 1}: " + ", ".join(f"{v} {times[v][-1]:.3f}s" for v in VARIANTS),
              flush=True)
    rows = []
    for v in VARIANTS:
        ratios = [t / p for t, p in zip(times[v], times["plain"], strict=True)]
        rows.append({"part": "timing", "case": case["case"], "variant": v,
                     "seconds_per_epoch": statistics.median(times[v]),
                     "ratio_over_plain": statistics.median(ratios),
                     "ratio_iqr": quantile(ratios, 0.75) - quantile(ratios, 0.25),
                     "logit_table_s": table_s if v == "kd_cached" else None, "rounds": rounds,
                     "epochs_per_round": per_unit,
                     "samples": len(split), "batch_size": batch})
    return rows


def accuracy(seeds: list[int], cache_dir: Path, out_dir: Path) -> list[dict[str, Any]]:
    from hydra import compose, initialize_config_dir

    import compressbench.stages  # noqa: F401  (registers the stage configs before composing)
    from compressbench.config import conf_dir
    from compressbench.pipeline import runner

    rows = []
    for seed in seeds:
        overrides = ["+experiment=digits_kd", f"runtime.seed={seed}", "measure.latency=false",
                     "runtime.progress=false", f"paths.cache_dir={cache_dir}"]
        with initialize_config_dir(config_dir=str(conf_dir()), version_base=None):
            cfg = compose("config", overrides=overrides)
        for r in runner.run(cfg, out_dir / f"seed{seed}", overrides):
            rows.append({"part": "accuracy", "case": "digits_kd", "seed": seed, "stage": r["stage"],
                         "variant": r.get("method") or "teacher", "model": r["model"], "test_acc": r["test_acc"],
                         "params": r["params"], "teacher_agreement": r.get("teacher_agreement"),
                         "wall_s": r["wall_s"]})
    for stage in dict.fromkeys(r["stage"] for r in rows):
        accs = [r["test_acc"] for r in rows if r["stage"] == stage]
        first = next(r for r in rows if r["stage"] == stage)
        rows.append({**first, "seed": "mean", "test_acc": statistics.mean(accs),
                     "test_acc_std": statistics.stdev(accs) if len(accs) > 1 else None,
                     "teacher_agreement": None, "wall_s": None})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cifar-samples", type=int, default=2048)
    parser.add_argument("--min-seconds", type=float, default=2.0, help="timed unit length (whole epochs)")
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1,
                        help="intra-op threads (1 is repeatable on a shared host)")
    parser.add_argument("--timing-only", action="store_true", help="skip part 2 (accuracy over seeds)")
    parser.add_argument("--cache-dir", type=Path, default=None, help="stage cache for part 2 (default: fresh)")
    parser.add_argument("--out", type=Path, default=Path("findings/benchmarks/bench_distill.csv"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows: list[dict[str, Any]] = []
    for case in (digits_case(), cifar_case(args.cifar_samples)):
        rows += time_case(case, args.rounds, args.min_seconds)
    if not args.timing_only:
        with tempfile.TemporaryDirectory() as tmp:
            rows += accuracy(args.seeds, args.cache_dir or Path(tmp) / "cache", Path(tmp) / "runs")
    provenance = {"threads": torch.get_num_threads(), "machine": machine(), "torch_version": torch.__version__,
                  "date": time.strftime("%Y-%m-%d")}
    rows = [{**r, **provenance} for r in rows]
    write_csv(args.out, rows)
    for r in rows:
        if r["part"] == "timing":
            print(f"{r['case']:>45} {r['variant']:>9}: {r['seconds_per_epoch']:.3f} s/epoch, "
                  f"{r['ratio_over_plain']:.2f}x plain (IQR {r['ratio_iqr']:.2f})")
        elif r["seed"] == "mean":
            print(f"digits_kd {r['stage']:>8} ({r['model']}): test top-1 {r['test_acc']:.2f}% "
                  f"(std {r.get('test_acc_std') or 0:.2f}) over seeds {args.seeds}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
