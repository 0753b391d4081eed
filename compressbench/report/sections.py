"""The sections of summary.md after the deployment advice: provenance, branches, techniques, Pareto fronts,
every stage, jobs that are still running or failed, and how to read the numbers."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

import compressbench.report.stats as stats
from compressbench.report.cells import (
    FORMAT,
    SPEEDUPS,
    acc_cell,
    delta_cell,
    noise_cell,
    point_cell,
    size_cell,
    spec_table,
)
from compressbench.report.tables import cell, human, times


def _join(rows: pd.DataFrame, col: str) -> str:
    return ", ".join(sorted(rows[col].dropna().astype(str).unique())) if col in rows else ""


def provenance(table: pd.DataFrame, raw: pd.DataFrame, root: Path) -> list[str]:
    seeds = _join(raw, "seed")
    n_test = _join(table, "test_images") if "test_images" in table else ""
    return [
        f"- experiment: {_join(raw, 'experiment')}",
        f"- model / dataset: {_join(raw, 'model')} / {_join(raw, 'dataset')}"
        + (f"; {n_test.replace('.0', '')} test images" if n_test else "; number of test images unknown"),
        f"- machine: {_join(raw, 'machine')}; device {_join(raw, 'device')}; torch {_join(raw, 'torch_version')}"
        f"; compressbench {_join(raw, 'git_sha')}",
        f"- runs: {raw['run_id'].nunique()} in {table['branch'].nunique()} branches (seeds {seeds or '?'}); "
        f"started {_join(raw, 'started')}",
        f"- made from `{root}` by `python -m compressbench.report`; each row's command is in the tables",
        ""]


def branches(table: pd.DataFrame) -> list[str]:
    pts = table[table["point"] != ""].copy()
    pts["_order"] = pts["point"].map(lambda p: -1 if p == "B" else int(p))
    pts = pts.sort_values("_order")
    return ["## Branches (the numbered points of every figure)", "", spec_table(pts, [
        ("#", None, point_cell), ("chain", "chain_to", str), ("technique", "credited_technique", str),
        ("test acc % [95%]", None, acc_cell), ("Δ pt [95%]", None, delta_cell), ("noise", None, _note),
        ("size", None, size_cell), ("compression", "compression_ratio", times), *SPEEDUPS,
        ("IQR of the plotted speedup", "speedup_best_iqr", FORMAT["speedup_best_iqr"]),
        ("command", "command", FORMAT["command"])]), ""]


def _note(r: Mapping[str, Any]) -> str:
    return "near chance" if r.get("near_chance") else noise_cell(r)


def techniques(seg: pd.DataFrame) -> list[str]:
    if seg.empty:
        return []
    seg = seg.sort_values("technique", kind="stable")
    return ["## Per technique (each step credited to the technique that made it; its finetune included)", "",
            spec_table(seg, [("technique", "technique", str), ("#", "point", str), ("steps", "steps", str),
                         ("after", "from", str), ("test acc %", "acc", str), ("Δ pt [95%]", "delta", str),
                         ("noise", None, lambda r: "near chance" if r.get("near_chance") else r.get("noise", "")),
                         ("× smaller (size_bytes)", "size_x", times), ("× smaller (stored)", "stored_x", times),
                         ("speedup_vs_reference at the end", "speed_ref", str),
                         ("speedup_vs_best_fp32 at the end", "speed_best", str)]), ""]


def pareto(cand: pd.DataFrame, table: pd.DataFrame) -> list[str]:
    lines = []
    for flavour in ("size_bytes", "encoded_bytes"):
        if flavour not in table or pd.to_numeric(table[flavour], errors="coerce").isna().all():
            continue
        lines += [f"## Pareto-optimal (test accuracy vs {flavour}; near-chance and failed stages never count)", ""]
        front = cand[stats.pareto_mask(cand, flavour)].sort_values(flavour) if flavour in cand else cand.head(0)
        if front.empty:
            lines += ["None: every stage with this size is failed or near chance (see 'Every stage').", ""]
            continue
        lines += [spec_table(front, [("#", None, point_cell), ("chain", "chain_to", str),
                                 ("technique", "credited_technique", str), (flavour, flavour, FORMAT[flavour]),
                                 ("test acc % [95%]", None, acc_cell), ("Δ pt [95%]", None, delta_cell),
                                 ("noise", None, noise_cell), *SPEEDUPS]), ""]
    return lines


def stages(table: pd.DataFrame) -> list[str]:
    return ["## Every stage", "", spec_table(table, [
        ("chain", "chain_to", str), ("kind", "kind", str), ("status", "status", str),
        ("seeds", "n_seeds", FORMAT["n_seeds"]), ("test acc % [95%]", None, acc_cell), ("Δ pt [95%]", None, delta_cell),
        ("noise", None, _note), ("params", "params", human), ("sparsity", "sparsity", FORMAT["sparsity"]),
        ("size_bytes", "size_bytes", FORMAT["size_bytes"]), ("encoded_bytes", "encoded_bytes", FORMAT["encoded_bytes"]),
        ("ratio", "compression_ratio", times), ("p50 ms", "latency_ms_p50", FORMAT["latency_ms_p50"]),
        *SPEEDUPS, ("cache", "cache_hit", lambda v: "hit" if str(v) in ("True", "1.0") else "")]),
        ""]


def jobs(jobs: Sequence[Mapping[str, Any]], table: pd.DataFrame) -> list[str]:
    lines = []
    running = [j for j in jobs if j.get("state") == "in progress"]
    failed = [j for j in jobs if j.get("state") == "failed"]
    if running:
        lines += ["## Jobs in progress when this report was made", "",
                  "(a run refreshes its report just before it finishes, so it may list itself here)", "",
                  "| run dir | overrides |", "|---|---|"]
        lines += [f"| {cell(j['run_dir'])} | {cell(j.get('overrides', ''))} |" for j in running] + [""]
    if failed:
        lines += ["## Failed jobs", "", "| run dir | status | overrides | error |", "|---|---|---|---|"]
        lines += [f"| {cell(j['run_dir'])} | {cell(j.get('status'))} | {cell(j.get('overrides', ''))} | "
                  f"{cell(j.get('error', ''))} |" for j in failed] + [""]
    unsupported = table[table["status"].astype(str) == "unsupported"] if not table.empty else table
    if not unsupported.empty:  # findings about a model, not crashes: those jobs succeeded
        lines += ["## Unsupported stages", "", "| run dir | stage | overrides | why |", "|---|---|---|---|"]
        lines += [f"| {cell(r['run_dir'])} | {cell(r['stage'])} | {cell(r.get('overrides', ''))} | "
                  f"{cell(r.get('error', ''))} |" for _, r in unsupported.iterrows()] + [""]
    return lines


def problems(problems: Sequence[str]) -> list[str]:
    return ["## Unreadable files", "", *[f"- {p}" for p in problems], ""] if problems else []


def how_to_read(table: pd.DataFrame, baseline: str) -> list[str]:
    if table.empty:
        return []
    return ["## How to read these numbers", "",
            f"- Baseline: each branch's first stage (B); {baseline}.",
            "- test acc [95%]: Wilson interval over the test images for one run; with seeds, mean ± sd (n) and a "
            "t interval of the mean, never narrower than the Wilson one.",
            f"- Δ pt [95%]: {delta_method(table)} With seeds, the t interval of the per-seed differences as well. "
            "*within noise*: it contains 0.",
            f"- {ties(table)}",
            f"- near chance: within {stats.NEAR_CHANCE_FRACTION:.0%} of the way from chance to 100%; never picked.",
            "- speedups: paired, batch 1, median of per-round ratios, each named for what it is paired with: "
            "`speedup_vs_reference` against the baseline on the row's own runtime family (*vs eager fp32*: an FX "
            "int8 model against eager fp32), `speedup_vs_best_fp32` against the baseline on the fastest fp32 "
            "runtime timed for it (*vs onnxruntime fp32*). Figures and the fastest pick use the latter where it "
            "was timed, else the former, and never rank the two together. IQR: spread of the per-round ratios.",
            "- size: the stage's artifact (size_bytes; for FX and PT2E int8 the int8 weights, which need "
            "compressbench to rebuild the module) or, where smaller, the verified encoded file (encoded_bytes, "
            "decoded before running); *file that runs*: the file a user loads without compressbench "
            "(deployable_bytes: the TorchScript / program file for FX / PT2E int8), what the *smallest that runs "
            "as is* pick and the compression ratio use, shown after the first size where it is another file.", ""]


def delta_method(table: pd.DataFrame) -> str:
    """How the Δ intervals were made: paired over the test images where both stages kept per-image results,
    else unpaired — said, never silently mixed."""
    methods = table.loc[~table["is_baseline"].astype(bool), "delta_method"] if "delta_method" in table \
        else pd.Series(dtype=object)
    paired, unpaired = int((methods == "paired").sum()), int((methods == "unpaired").sum())
    how_paired = ("paired over the test images (each stage's per-image results, stages/*/test_hits.npy): the "
                  "McNemar-type normal interval of the mean per-image difference, Agresti–Min adjusted — only "
                  "images the two models score differently add noise.")
    how_unpaired = ("Newcombe's interval of two independent accuracies, which ignores that both models saw the "
                    "same images: wider than a paired one, it errs toward *within noise*.")
    if unpaired == 0:
        return how_paired[0].upper() + how_paired[1:]
    if paired == 0:
        return ("UNPAIRED: these runs kept no per-image results (made before they were written, or a copy "
                f"without them), so {how_unpaired}")
    return (f"{paired} stage(s) {how_paired} The other {unpaired} (runs without per-image results) are "
            f"UNPAIRED: {how_unpaired}")


def ties(table: pd.DataFrame) -> str:
    """The tie rule of the accuracies, and how many test images tied where runs counted them."""
    counted = pd.to_numeric(table["test_ties"], errors="coerce").dropna() if "test_ties" in table else []
    rule = ("ties: an image whose top logit is shared by k classes including its label counts 1/k (int8 logits "
            "take few values; a rule that picks by class index would move accuracy by itself)")
    if not len(counted):
        return rule + "; these runs predate it (no test_ties column): their ties went to the lowest class index."
    return rule + f"; test_ties: images tied at the top, up to {int(counted.max())} in a stage here."
