"""From result rows to what a report shows: seed groups (mean ± sd, n), each stage against its baseline with a
95% interval, one numbered point per branch, and the command that reproduces each artifact.

A *branch* is one chain of stages, over all the seeds it was run with (runs that differ only by
``runtime.seed``). Its *baseline* is the chain's reference stage (``reference_stage``, the first stage).
"""
from __future__ import annotations

import math
import shlex
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

import compressbench.report.stats as stats
from compressbench.report.labels import parse_overrides, speedup_columns
from compressbench.results.objective import stored_size

Credit = Callable[[Mapping[str, Any]], np.ndarray | None]  # a raw row → its per-image test credit

MEAN_COLUMNS = ("test_acc", "val_acc", "test_top5")  # averaged over seeds; every other number: the median


def _seedless(overrides: object) -> str:
    tokens = str(overrides).split() if isinstance(overrides, str) else []
    return " ".join(t for t in tokens if not t.lstrip("+~").startswith("runtime.seed="))


def branch_keys(rows: pd.DataFrame) -> dict[str, str]:
    """run_id → branch: runs of one experiment whose overrides and stages agree but for the seed share one."""
    keys: dict[str, str] = {}
    members: dict[str, list[tuple[str, object]]] = {}
    for rid, run in rows.groupby("run_id", sort=False):
        first = run.iloc[0]
        stages = "→".join(str(s) for s in run.sort_values("stage_index")["stage"])
        key = f"{first.get('experiment')}|{_seedless(first.get('overrides'))}|{stages}"
        members.setdefault(key, []).append((str(rid), first.get("seed")))
    for key, runs in members.items():
        seeds = [s for _, s in runs]
        distinct = len({str(s) for s in seeds}) == len(seeds)
        for rid, _ in runs:  # the same seed twice is not a seed sweep: keep such runs apart
            keys[rid] = key if distinct else f"{key}|{rid}"
    return keys


def _baseline_rows(run: pd.DataFrame) -> pd.Series:
    ref = run["reference_stage"].dropna().astype(str) if "reference_stage" in run else pd.Series(dtype=str)
    if len(ref):
        hit = run[run["stage"].astype(str) == ref.iloc[0]]
        if len(hit):
            return hit.iloc[0]
    return run.sort_values("stage_index").iloc[0]


def _per_image(group: pd.DataFrame, credit: Credit | None) -> stats.PerImage | None:
    """The group's per-image credit by seed; None unless every seed of it kept one."""
    if credit is None:
        return None
    seeds = group.get("seed", group["run_id"]).astype(str)
    arrays = {seed: credit(r) for seed, r in zip(seeds, group.to_dict("records"), strict=True)}
    return stats.PerImage(arrays) if all(a is not None for a in arrays.values()) else None


def stage_table(rows: pd.DataFrame, credit: Credit | None = None) -> pd.DataFrame:
    """One row per (branch, stage) with mean accuracy, its interval, and its change against the baseline.

    ``credit(row)``: a raw row's per-image test credit (None where its run kept none); with it, a change is
    paired over the test images where both stages have them, else (and without ``credit``) unpaired.

    Added columns: branch, seeds, n_seeds, test_acc_sd, acc_lo, acc_hi, chance_acc, near_chance, is_baseline,
    delta_acc, delta_lo, delta_hi, delta_sd, delta_method (paired / unpaired), delta_mixed (both in the table),
    within_noise, per_image,
    stored_bytes, stored_flavour, chain, chain_to.
    """
    if rows.empty:
        return rows.copy()
    rows = rows.copy()
    rows["branch"] = rows["run_id"].astype(str).map(branch_keys(rows))
    acc = pd.to_numeric(rows["test_acc"], errors="coerce")
    base_acc, base_stage = {}, {}
    for rid, run in rows.groupby("run_id", sort=False):
        base = _baseline_rows(run)
        base_acc[rid], base_stage[rid] = pd.to_numeric(base["test_acc"], errors="coerce"), int(base["stage_index"])
    rows["_diff"] = acc - rows["run_id"].map(base_acc)
    groups = rows.groupby(["branch", "stage_index"], sort=False)
    per_image = {gkey: _per_image(group, credit) for gkey, group in groups}
    # Seed groups' numbers at once (per group and column, pandas would take most of a sweep job's report time):
    # accuracies averaged, every other number the median; a column that is all empty in a group keeps its NaN.
    numeric = [c for c in rows.columns if c not in ("stage_index", "seed")
               and pd.api.types.is_numeric_dtype(rows[c]) and not pd.api.types.is_bool_dtype(rows[c])]
    means = groups[[c for c in numeric if c in MEAN_COLUMNS]].mean()
    medians = groups[[c for c in numeric if c not in MEAN_COLUMNS]].median()
    out = []
    for gkey, group in groups:
        first = group.iloc[0].copy()
        index = gkey[1]
        for agg in (means, medians):
            values = agg.loc[gkey]
            present = values.notna()
            first[values.index[present]] = values[present]
        for c in ("best_fp32_runtime", "runtime", "reference_runtime"):  # the first seed that names it
            if c in group and group[c].notna().any():
                first[c] = group[c].dropna().iloc[0]
        # Recomputed from the medians: a seed without a best-fp32 timing never mixes its baseline in silently.
        first["speedup_best"], first["speedup_best_iqr"], first["speedup_baseline"] = speedup_columns(first)
        n_test = pd.to_numeric(group.get("test_images"), errors="coerce").max() if "test_images" in group \
            else math.nan
        mean, sd, lo, hi, n = stats.mean_interval(pd.to_numeric(group["test_acc"], errors="coerce"))
        wl, wh = stats.wilson(mean, n_test)
        lo, hi = stats.union((lo, hi), (wl, wh)) if n > 1 else (wl, wh)
        first["acc_lo"], first["acc_hi"] = max(lo, 0.0), min(hi, 100.0)  # a t interval may overshoot 100%
        first["test_acc"], first["test_acc_sd"], first["n_seeds"] = mean, sd, len(group)
        first["seed_accs"] = dict(zip(group.get("seed", group["run_id"]).astype(str),
                                      pd.to_numeric(group["test_acc"], errors="coerce"), strict=True))
        first["seeds"] = ",".join(sorted({str(s) for s in group.get("seed", pd.Series(dtype=object)).dropna()}))
        first["is_baseline"] = int(index) == base_stage.get(first["run_id"], 0)
        dmean, dsd, dlo, dhi, dn = stats.mean_interval(group["_diff"])
        base_mean = mean - dmean if not math.isnan(dmean) else math.nan
        first["per_image"] = per_image[gkey]
        pair = stats.paired_delta(per_image[gkey], per_image.get((gkey[0], base_stage.get(first["run_id"], 0))))
        first["delta_method"] = "paired" if pair is not None else "unpaired"
        nlo, nhi = pair if pair is not None else stats.newcombe(mean, n_test, base_mean, n_test)[1:]
        if first["is_baseline"]:
            nlo = nhi = dlo = dhi = 0.0
            first["delta_method"] = None
        first["delta_acc"], first["delta_sd"] = dmean, dsd
        first["delta_lo"], first["delta_hi"] = stats.union((dlo, dhi), (nlo, nhi)) if dn > 1 else (nlo, nhi)
        out.append(first)
    table = pd.DataFrame(out).drop(columns="_diff").reset_index(drop=True)
    # Paired and unpaired changes side by side (old runs beside new ones): each unpaired one says so in its cell.
    table["delta_mixed"] = table["delta_method"].dropna().nunique() > 1
    table["within_noise"] = [None if b else stats.within_noise(lo, hi)
                             for b, lo, hi in zip(table["is_baseline"], table["delta_lo"], table["delta_hi"],
                                                  strict=True)]
    classes = pd.to_numeric(table.get("num_classes"), errors="coerce") if "num_classes" in table else None
    table["chance_acc"] = [stats.chance_pct(c) for c in classes] if classes is not None else math.nan
    table["near_chance"] = [stats.near_chance(a, c) for a, c in zip(table["test_acc"], table["chance_acc"],
                                                                     strict=True)]
    stored = [stored_size(r) for r in table.to_dict("records")]  # the objective's size_bytes is the same
    table["stored_bytes"] = [math.nan if b is None else b for b, _ in stored]
    table["stored_flavour"] = [f for _, f in stored]
    chains = {b: list(g.sort_values("stage_index")["stage"].astype(str)) for b, g in table.groupby("branch")}
    table["chain"] = table["branch"].map(lambda b: "→".join(chains[b]))
    table["chain_to"] = [("→".join(chains[b][: chains[b].index(str(s)) + 1]))
                         for b, s in zip(table["branch"], table["stage"], strict=True)]
    table["command"] = [command(r, chains[r["branch"]]) for _, r in table.iterrows()]
    return table


# Overrides that change where files go and what the terminal shows, never a number: left out of a row's command,
# whose cache path would only name the machine that made it.
MACHINE_LOCAL = ("paths.cache_dir=", "runtime.progress=")


def command(row: pd.Series, chain: list[str]) -> str:
    """The command that makes this row's artifact: the run's overrides, the chain cut after this stage."""
    overrides = [t for t in _seedless(row.get("overrides")).split() if not t.lstrip("+").startswith(MACHINE_LOCAL)]
    upto = chain[: chain.index(str(row["stage"])) + 1]
    if upto != chain or any(t.startswith("chain=") for t in overrides):
        overrides = [t for t in overrides if not t.startswith("chain=")] + [f"chain=[{','.join(upto)}]"]
    seeds = [s for s in str(row.get("seeds", "")).split(",") if s]
    if any(t.lstrip("+~").startswith(GIVEN) for t in overrides):  # objects passed to compressbench.run
        return python_command(row, overrides, seeds)
    if len(seeds) > 1:
        return " ".join(shlex.quote(t) for t in ["python", "-m", "compressbench", "-m", *overrides,
                                                  f"runtime.seed={','.join(seeds)}"])
    if seeds and "runtime.seed" in parse_overrides(row.get("overrides")):
        overrides.append(f"runtime.seed={seeds[0]}")
    return run_command(overrides)


SEARCH_GROUP = "hparams_search"  # its configs set hydra.mode: MULTIRUN (a search without -m)


def single_run(overrides: list[str]) -> list[str]:
    """A job's overrides as one run of that job: a trial of a search (``+hparams_search=...``) gets
    ``hydra.mode=RUN``, or its command would start a new search instead of running the trial again."""
    searched = any(t.lstrip("+~").startswith(f"{SEARCH_GROUP}=") for t in overrides)
    if searched and not any(t.startswith("hydra.mode=") for t in overrides):
        return [*overrides, "hydra.mode=RUN"]
    return list(overrides)


def run_command(overrides: list[str]) -> str:
    """``python -m compressbench ...`` that runs one job with ``overrides`` again, quoted for a shell."""
    return " ".join(shlex.quote(t) for t in ["python", "-m", "compressbench", *single_run(overrides)])


# What compressbench.run(model=..., data=...) adds for Python objects (models/given.py, data/given.py): they
# exist only in the process that passed them, so their rows are reproduced by that call, not a command line.
GIVEN = ("model=module", "model.cls=", "model.digest=", "dataset=datasets", "dataset.digest=", "dataset.label=")


def python_command(row: pd.Series, overrides: list[str], seeds: list[str]) -> str:
    """``compressbench.run(model=<your Net>, data=<your (train, test)>, overrides=[...])`` for such a row."""
    given = {t.lstrip("+~").split("=", 1)[0]: t for t in overrides if t.lstrip("+~").startswith(GIVEN)}
    rest = [t for t in overrides if t not in given.values()]
    args = ([f"model=<your {row.get('model')}>"] if "model" in given else []) + \
        ([f"data=<your (train, test) {row.get('dataset')}>"] if "dataset" in given else [])
    call = f"compressbench.run({', '.join(args)}, overrides={rest!r}"
    if len(seeds) > 1:
        return f"for seed in [{', '.join(seeds)}]: {call[:-1]}, f'runtime.seed={{seed}}'])"
    if seeds and "runtime.seed" in parse_overrides(row.get("overrides")):
        return f"{call[:-1]}, 'runtime.seed={seeds[0]}'])"
    return call + ")"


def number_points(table: pd.DataFrame) -> pd.DataFrame:
    """Add ``point``: 'B' for the baseline, and 1, 2, ... for each branch's last successful stage (or, with a
    single branch, for each stage after the baseline) — the numbers every figure and table share."""
    table = table.copy()
    table["point"] = ""
    if table.empty:
        return table
    seen = set()
    for i in table.index[table["is_baseline"].astype(bool)]:  # one B per distinct baseline model
        key = table.at[i, "stage_key"] if "stage_key" in table and not pd.isna(table.at[i, "stage_key"]) \
            else table.at[i, "branch"]
        if key not in seen:
            seen.add(key)
            table.at[i, "point"] = "B"
    ok = table[(table["status"].astype(str) == "ok") & ~table["is_baseline"].astype(bool)]
    branches = list(dict.fromkeys(table["branch"]))
    number = 0
    for branch in branches:
        mine = ok[ok["branch"] == branch].sort_values("stage_index")
        chosen = mine.index if len(branches) == 1 else mine.index[-1:]
        for i in chosen:
            number += 1
            table.at[i, "point"] = str(number)
    return table


def baseline_note(table: pd.DataFrame) -> str:
    """Whether every branch starts from one and the same baseline model (same stage cache key)."""
    base = table[table["is_baseline"].astype(bool)]
    keys = {str(k) for k in base.get("stage_key", pd.Series(dtype=object)).dropna()}
    accs = base["test_acc"].dropna().round(6).unique()
    if len(keys) == 1 or (not keys and len(accs) <= 1):
        return "one baseline shared by every branch"
    return f"{base['branch'].nunique()} branches with their own baselines: each compared with its own"
