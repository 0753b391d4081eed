"""How sure we are: 95% intervals for accuracies and their differences, chance level, and Pareto fronts.

- One run: the Wilson score interval of its test accuracy over the ``n`` test images (exact enough at any
  accuracy, unlike the normal approximation near 100%).
- A difference of two accuracies from one run each: Newcombe's hybrid score interval built from the two Wilson
  intervals. Both models are scored on the same images, so the true interval is narrower: this one errs on the
  side of "within noise".
- Runs that differ only by seed: mean ± sd and n, with a Student-t interval of the mean, never narrower than
  the Wilson interval at the mean (seeds do not sample the test set, so they do not see its noise).
A difference is "within noise" when its 95% interval contains 0.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from compressbench.infra.tdist import Z95, t95

# A model that closes less than this fraction of the gap from chance to 100% is "near chance": never a pick.
NEAR_CHANCE_FRACTION = 0.1


def _nan(x: float | None) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def wilson(acc_pct: float, n: float | None) -> tuple[float, float]:
    """95% Wilson interval (percent) of an accuracy measured on ``n`` test images; NaNs when n is unknown."""
    if _nan(acc_pct) or _nan(n) or not n or n <= 0:
        return math.nan, math.nan
    p, z2 = acc_pct / 100.0, Z95 * Z95
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return 100.0 * max(0.0, centre - half), 100.0 * min(1.0, centre + half)


def newcombe(a_pct: float, n_a: float | None, b_pct: float, n_b: float | None) -> tuple[float, float, float]:
    """(a − b, low, high) in points, Newcombe's 95% interval for the difference of two accuracies."""
    diff = a_pct - b_pct
    la, ua = wilson(a_pct, n_a)
    lb, ub = wilson(b_pct, n_b)
    if any(math.isnan(v) for v in (la, ua, lb, ub)):
        return diff, math.nan, math.nan
    low = diff - math.sqrt((a_pct - la) ** 2 + (ub - b_pct) ** 2)
    high = diff + math.sqrt((ua - a_pct) ** 2 + (b_pct - lb) ** 2)
    return diff, low, high


def mean_interval(values: Sequence[float]) -> tuple[float, float, float, float, int]:
    """(mean, sd, low, high, n) of repeated measurements (seeds); a t interval of the mean."""
    vals = [float(v) for v in values if not _nan(v)]
    n = len(vals)
    if n == 0:
        return math.nan, math.nan, math.nan, math.nan, 0
    mean = sum(vals) / n
    if n == 1:
        return mean, math.nan, math.nan, math.nan, 1
    sd = math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1))
    half = t95(n - 1) * sd / math.sqrt(n)
    return mean, sd, mean - half, mean + half, n


def union(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    """The smallest interval holding both (NaN-tolerant): two noise sources, neither one dominated."""
    lows = [v for v in (a[0], b[0]) if not math.isnan(v)]
    highs = [v for v in (a[1], b[1]) if not math.isnan(v)]
    return (min(lows) if lows else math.nan), (max(highs) if highs else math.nan)


def within_noise(low: float, high: float) -> bool | None:
    """True when a difference's interval contains 0; None when there is no interval."""
    if math.isnan(low) or math.isnan(high):
        return None
    return low <= 0.0 <= high


def chance_pct(num_classes: float | None) -> float:
    return 100.0 / float(num_classes) if not _nan(num_classes) and num_classes and num_classes > 0 else math.nan


def near_chance(acc_pct: float, chance: float) -> bool:
    """True at or near chance: the model learned (almost) nothing usable."""
    if _nan(acc_pct) or _nan(chance):
        return False
    return acc_pct <= chance + NEAR_CHANCE_FRACTION * (100.0 - chance)


def pareto_mask(rows: pd.DataFrame, size: str, acc: str = "test_acc") -> pd.Series:
    """True for rows no other row beats on both smaller ``size`` and higher ``acc``; only ok rows with values,
    and never a row marked ``near_chance``."""
    ok = rows["status"].astype(str) == "ok" if "status" in rows else pd.Series(True, index=rows.index)
    if "near_chance" in rows:
        ok &= ~rows["near_chance"].fillna(False).astype(bool)
    s = pd.to_numeric(rows[size], errors="coerce") if size in rows else pd.Series(math.nan, index=rows.index)
    a = pd.to_numeric(rows[acc], errors="coerce") if acc in rows else pd.Series(math.nan, index=rows.index)
    valid = ok & s.notna() & a.notna()
    mask = pd.Series(False, index=rows.index)
    for i in rows.index[valid]:
        dominated = valid & (s <= s[i]) & (a >= a[i]) & ((s < s[i]) | (a > a[i]))
        mask[i] = not dominated.any()
    return mask
