"""Hand-made result rows for the report tests (no training: every number is chosen by the test)."""
from __future__ import annotations

import json
from pathlib import Path

from compressbench.results import write_results

BASE = 89541


def row(run: str, index: int, stage: str, kind: str, acc: float, size: float, **extra) -> dict:
    base = {"run_id": run, "experiment": "demo", "model": "lenet5", "dataset": "digits", "seed": 0,
            "stage_index": index, "stage": stage, "kind": kind, "status": "ok", "test_acc": acc,
            "size_bytes": size, "compression_ratio": BASE / size, "machine": "cpu X (2 cores)", "device": "cpu",
            "runtime": "eager", "threads": 1, "num_classes": 10, "latency_ms_p50": 0.2, "speedup": 1.0,
            "speedup_iqr": 0.0, "reference_stage": "train", "stage_key": f"{run}-{index}"}
    return {**base, **extra}


def baseline(run: str, acc: float = 96.94, overrides: str = "", seed: int = 0) -> dict:
    # One cached baseline model for every branch of a seed: the same stage key.
    return row(run, 0, "train", "train", acc, BASE, overrides=overrides, seed=seed, stage_key=f"base-{seed}")


def write_run(root: Path, name: str, rows: list[dict], test_images: int | None = 359, status: str = "ok",
              history: dict[str, list[dict]] | None = None) -> Path:
    """A run folder as the runner leaves it: results.csv, status.json, split.json, stage histories."""
    run_dir = root / name
    write_results(run_dir / "results.csv", rows)
    (run_dir / "status.json").write_text(json.dumps({"status": status, "experiment": rows[0]["experiment"],
                                                      "overrides": rows[0].get("overrides", "")}))
    if test_images:
        (run_dir / "split.json").write_text(json.dumps({"sizes": {"train": 1000, "val": 100, "test": test_images}}))
    for stage_dir, epochs in (history or {}).items():
        write_results(run_dir / "stages" / stage_dir / "history.csv", epochs)
    return run_dir


def compare_tree(root: Path, seeds: tuple[int, ...] = (0,)) -> None:
    """A compare_all-like sweep: five branches from one baseline, speedups against two different baselines,
    one chance-level model with the smallest encoding."""
    job = 0
    for seed in seeds:
        wiggle = 0.3 * seed  # seeds move accuracies a little
        branches = {
            "prune": [row("p", 1, "l1_filter", "prune", 50.0 + wiggle, 26693, method="l1_filter", speedup=1.3,
                          encoded_bytes=22943),
                      row("p", 2, "finetune", "train", 96.5 + wiggle, 26693, speedup=1.25, speedup_iqr=0.2)],
            "int8": [row("q", 1, "int8", "quantize", 96.6 - wiggle, 35907, method="static_int8",
                         runtime="fx-int8", speedup=0.96, speedup_vs_best_fp32=0.11,
                         best_fp32_runtime="onnxruntime")],
            "int8_ort": [row("o", 1, "int8_ort", "quantize", 96.94, 36123, method="static_int8",
                             runtime="onnxruntime-int8", speedup=0.73, speedup_vs_best_fp32=0.73,
                             best_fp32_runtime="onnxruntime")],
            "kd": [row("k", 1, "kd", "distill", 95.8 + wiggle, 13799, method="kd", speedup=1.44)],
            "broken": [row("c", 1, "cluster", "cluster", 10.6, BASE, encoded_bytes=900, speedup=0.9)],
        }
        for name, stages in branches.items():
            rid = f"{name}-s{seed}"
            overrides = f"chain=[train,{','.join(s['stage'] for s in stages)}] +experiment=demo" + (
                f" runtime.seed={seed}" if len(seeds) > 1 else "")
            rows = [baseline(rid, 96.94 + wiggle / 2, overrides, seed)]
            rows += [{**s, "run_id": rid, "overrides": overrides, "seed": seed,
                      "stage_key": f"{name}-{s['stage_index']}-{seed}"} for s in stages]
            write_run(root, str(job), rows)
            job += 1
