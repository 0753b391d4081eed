"""summary.md: what to deploy for an accuracy budget, how sure we are, and every branch, technique and stage.

Picks never use a failed stage or one at or near chance; every accuracy carries its 95% interval and every
speedup says what it was measured against.
"""
from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

import compressbench.report.best_trial as best_trial
import compressbench.report.pareto_set as pareto_set
import compressbench.report.recovery as recovery
import compressbench.report.repeats as repeats
import compressbench.report.sections as sections
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
    speed_best_cell,
    speed_ref_cell,
    unpaired_note,
)
from compressbench.report.points import baseline_note
from compressbench.report.tables import interval, pct, times
from compressbench.results.objective import number

BUDGETS_PT = (0.5, 1.0, 2.0)


def candidates(table: pd.DataFrame) -> pd.DataFrame:
    """Artifacts one could deploy: ok stages with an accuracy, not near chance, one per model (stage key; the
    shortest chain that makes it)."""
    ok = table[(table["status"].astype(str) == "ok") & pd.to_numeric(table["test_acc"], errors="coerce").notna()
               & ~table["near_chance"].astype(bool)].copy()
    ok["_len"] = ok["chain_to"].str.count("→")
    ok = ok.sort_values(["_len", "stage_index"], kind="stable")
    if "stage_key" in ok and ok["stage_key"].notna().all():
        ok = ok.drop_duplicates("stage_key")
    return ok.drop(columns="_len")


def runnable_bytes(table: pd.DataFrame) -> pd.Series:
    """Bytes of the file each row's model runs from on its own: ``deployable_bytes`` where measured (older runs
    lack it), else ``size_bytes``."""
    size = pd.to_numeric(table["size_bytes"], errors="coerce")
    if "deployable_bytes" not in table:
        return size
    return pd.to_numeric(table["deployable_bytes"], errors="coerce").fillna(size)


def budget_table(table: pd.DataFrame, budgets: Sequence[float] = BUDGETS_PT) -> tuple[pd.DataFrame, list[str]]:
    """For each budget (pt below the baseline): the smallest and the fastest candidate; and notes on the
    candidates whose speedups cannot be ranked (timed against another fp32 runtime)."""
    cand = candidates(table)
    base = cand[cand["is_baseline"].astype(bool)]
    routes = cand.loc[cand["speedup_baseline"].astype(str).str.startswith("best"), "speedup_baseline"]
    speed = cand.copy()
    # Where its speedup was timed: an fp32 model on its fastest route (``fastest_route``), else its own runtime.
    route = speed["fastest_route"] if "fastest_route" in speed else pd.Series(None, index=speed.index, dtype=object)
    speed["deploy"] = route.where(route.notna() & (route.astype(str) != ""), speed["runtime"]).astype(str)
    notes = []
    if len(routes):  # the baseline itself on the fastest fp32 route: 1× by definition, zero accuracy cost
        route = routes.mode().iloc[0][len("best fp32 ("):-1]
        on_best = base.assign(speedup_best=1.0, speedup_best_iqr=0.0, speedup_baseline=routes.mode().iloc[0],
                              speedup_vs_best_fp32=1.0, best_fp32_runtime=route, speedup_vs_reference=1.0,
                              reference_runtime=route, deploy=f"fp32 on {route}")  # itself on that route
        speed = pd.concat([speed[~speed["is_baseline"].astype(bool)], on_best])
        comparable = speed["speedup_baseline"].astype(str).str.startswith("best")
    else:
        label = base["speedup_baseline"].iloc[0] if len(base) else ""
        comparable = speed["speedup_baseline"] == label
    others = speed[~comparable & pd.to_numeric(speed["speedup_best"], errors="coerce").notna()
                   & (speed["point"] != "") & (speed["delta_acc"] >= -max(budgets) - 1e-9)]
    if len(others):
        notes.append("Not ranked for speed (timed only against their own runtime's fp32, not the fastest fp32 "
                     "route): " + "; ".join(f"#{r['point']} {r['chain_to']} {times(r['speedup_best'])} vs {r['speedup_baseline']}"
                                            for _, r in others.iterrows()) + ".")
    speed = speed[comparable & pd.to_numeric(speed["speedup_best"], errors="coerce").notna()]
    out = []
    # "Runs as is" is the file a user can load without compressbench (FX/PT2E int8 weights need it to rebuild the
    # module: their TorchScript / program file is what runs), else the artifact itself.
    cand = cand.assign(runnable_bytes=runnable_bytes(cand))
    for budget in budgets:
        fits = cand[cand["delta_acc"] >= -budget - 1e-9]
        if len(fits):
            small = fits.sort_values(["runnable_bytes", "test_acc"], ascending=[True, False]).iloc[0]
            out.append({"budget": f"≤ {budget:g} pt", "budget_pt": budget, "pick": "smallest that runs as is",
                        **small.to_dict(),
                        "stored_bytes": small["runnable_bytes"], "stored_flavour": "deployable_bytes",
                        "deploy": small.get("runtime")})
            stored = fits.sort_values(["stored_bytes", "test_acc"], ascending=[True, False]).iloc[0]
            if stored["stored_bytes"] < small["runnable_bytes"]:
                out.append({"budget": f"≤ {budget:g} pt", "budget_pt": budget, "pick": "smallest file (decode to run)",
                            **stored.to_dict(), "deploy": stored.get("runtime")})
        fast = speed[speed["delta_acc"] >= -budget - 1e-9]
        if len(fast):
            best = fast.sort_values(["speedup_best", "test_acc"], ascending=[False, False]).iloc[0]
            out.append({"budget": f"≤ {budget:g} pt", "budget_pt": budget, "pick": "fastest", **best.to_dict()})
    return pd.DataFrame(out), notes


def _pick_id(r: Mapping[str, Any]) -> tuple[str, str, str]:
    """What a pick recommends: the kind of pick, the artifact (its stage key, else its branch point and chain),
    and where it deploys."""
    key = r.get("stage_key")
    artifact = str(key) if isinstance(key, str) and key else f"{r.get('point')}:{r.get('chain_to')}"
    return str(r.get("pick")), artifact, str(r.get("deploy") or "")


def collapse_budgets(picks: pd.DataFrame) -> pd.DataFrame:
    """``budget_table``'s picks with each recommendation once, its ``budget`` naming every budget it answers
    ('≤ 0.5, 1, 2 pt'): the same three picks repeated per budget hid which budgets change the answer."""
    if picks.empty or "budget_pt" not in picks:
        return picks
    ids = [_pick_id(r) for r in picks.to_dict("records")]
    budgets: dict[tuple[str, str, str], list[float]] = {}
    for pick, budget in zip(ids, picks["budget_pt"], strict=True):
        budgets.setdefault(pick, []).append(float(budget))
    first = ~pd.Series(ids, index=picks.index).duplicated()
    out = picks[first.to_numpy()].copy()
    out["budget"] = [f"≤ {', '.join(f'{b:g}' for b in budgets[pick])} pt"
                     for pick, keep in zip(ids, first, strict=True) if keep]
    return out


def segments(table: pd.DataFrame) -> pd.DataFrame:
    """Each technique's step in each chain: from the stage before it through its finetune (a training stage
    right after it), so the gain is credited to the technique, not to the finetune row."""
    out, seen = [], set()
    for _, branch in table[table["status"].astype(str) == "ok"].groupby("branch", sort=False):
        stages = _carry_shared_files(branch.sort_values("stage_index").to_dict("records"))
        i = 1
        while i < len(stages):
            j = i
            while j + 1 < len(stages) and str(stages[j + 1]["kind"]) == "train" and str(stages[i]["kind"]) != "train":
                j += 1
            before, after = stages[i - 1], stages[j]
            key = (before.get("stage_key"), after.get("stage_key"), before["branch"] if pd.isna(
                after.get("stage_key")) else None)
            if key not in seen:
                seen.add(key)
                out.append(_segment(before, stages[i: j + 1], after))
            i = j + 1
    return pd.DataFrame(out)


def _shares_weights(row: Mapping[str, Any]) -> bool:
    return number(row.get("distinct_values_max")) is not None


def _file_unmeasured(row: Mapping[str, Any]) -> bool:
    """A model with shared weights (``distinct_values_max``) ships as its Deep Compression file; a row of it without
    ``encoded_bytes`` (a retrain after cluster) has no measured stored size — its dense size is not it."""
    return _shares_weights(row) and number(row.get("encoded_bytes")) is None


def _carry_shared_files(stages: list[dict]) -> list[dict]:
    """A retrain of shared weights moves only the shared values: every weight keeps its cluster and every zero
    stays, so its Deep Compression file has the size of the one measured just before it (the encode row after it
    measures the same bytes). Such a row takes that file's size as its stored size; without a measured file
    before it, it has none (NaN), never its dense size."""
    out = []
    for k, row in enumerate(stages):
        if _file_unmeasured(row):
            prev = out[k - 1] if k else None
            row = {**row, "stored_bytes": prev["stored_bytes"] if prev and _shares_weights(prev) else math.nan}
        out.append(row)
    return out


def _segment(before: dict, steps: list[dict], after: dict) -> dict:
    n_test = after.get("test_images")
    diffs = [after["seed_accs"][s] - before["seed_accs"][s] for s in after.get("seed_accs", {})
             if s in before.get("seed_accs", {})]
    mean, _, lo, hi, n = stats.mean_interval(diffs)
    pair = stats.paired_delta(after.get("per_image"), before.get("per_image"))
    nlo, nhi = pair if pair is not None else stats.newcombe(after["test_acc"], n_test, before["test_acc"], n_test)[1:]
    lo, hi = stats.union((lo, hi), (nlo, nhi)) if n > 1 else (nlo, nhi)
    delta = mean if n else after["test_acc"] - before["test_acc"]

    def ratio(col: str) -> float:
        a, b = pd.to_numeric(after.get(col), errors="coerce"), pd.to_numeric(before.get(col), errors="coerce")
        return float(b / a) if a and not pd.isna(a) and not pd.isna(b) else math.nan

    return {"technique": steps[0]["technique"], "point": after.get("point") or "·",
            "steps": " → ".join(str(s["stage"]) for s in steps), "from": before["stage"],
            "acc": f"{pct(before['test_acc'], 2)} → {pct(after['test_acc'], 2)}",
            "delta": interval(delta, lo, hi, digits=2, signed=True) + unpaired_note(
                {"delta_mixed": after.get("delta_mixed"), "delta_method": "unpaired" if pair is None else "paired"}),
            "noise": {True: "within noise", False: "outside noise", None: "n unknown"}[stats.within_noise(lo, hi)],
            "size_x": ratio("size_bytes"), "stored_x": ratio("stored_bytes"),
            "speed_ref": speed_ref_cell(after), "speed_best": speed_best_cell(after),
            "near_chance": after.get("near_chance"),
            "delta_method": "paired" if pair is not None else "unpaired"}


def summary_markdown(table: pd.DataFrame, jobs: Sequence[Mapping[str, Any]], problems: Sequence[str],
                     root: Path, raw: pd.DataFrame) -> str:

    lines = ["# compressbench summary", ""]
    if not table.empty:
        lines += sections.provenance(table, raw, root)
        budget, notes = budget_table(table)
        lines += ["## What should I deploy?", "",
                  "For each accuracy budget (test accuracy at most this far below the baseline, point estimate), "
                  "the smallest artifact and the fastest one; a pick that answers several budgets is listed once, "
                  "with all of them. Intervals are 95%; *within noise* means the interval of the difference "
                  "contains 0.", ""]
        if budget.empty:
            lines += ["No stage qualifies (status ok, not near chance, within 2 pt of the baseline).", ""]
        else:
            lines += [spec_table(collapse_budgets(budget), [
                ("budgets", "budget", str), ("pick", "pick", str), ("#", None, point_cell),
                ("chain", "chain_to", str), ("deploy on", "deploy", lambda v: str(v or "")),
                ("size", None, size_cell), *SPEEDUPS, ("test acc % [95%]", None, acc_cell),
                ("Δ pt [95%]", None, delta_cell), ("noise", None, noise_cell), ("command", "command", FORMAT["command"])]),
                ""]
        lines += [*(f"- {n}" for n in notes), *([""] if notes else [])]
        lines += repeats.section(raw)  # flagged, never picked from
        lines += sections.branches(table) + sections.techniques(segments(table))
        lines += recovery.section(table, root)
        lines += sections.pareto(candidates(table), table) + sections.stages(table)
    lines += pareto_set.section(root) + best_trial.section(root) + sections.jobs(jobs, table) + sections.problems(problems)
    lines += sections.how_to_read(table, baseline_note(table) if not table.empty else "")
    lines.append(f"_Report made {time.strftime('%Y-%m-%d %H:%M')}._")
    return "\n".join(lines) + "\n"
