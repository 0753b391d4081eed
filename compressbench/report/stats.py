"""How sure we are: 95% intervals for accuracies and their differences, chance level, and Pareto fronts.

- One run: the Wilson score interval of its test accuracy over the ``n`` test images (exact enough at any
  accuracy, unlike the normal approximation near 100%).
- A difference of two accuracies on the same test images, where both runs kept their per-image results
  (``test_hits.npy``): a paired interval over the images — the normal interval of the mean per-image difference
  with Agresti & Min's (2005) adjustment (half an image added to each cell of the 2×2 table). On 0/1 hits it is
  the McNemar-type interval on the discordant images; a tie credited 1/k enters as its fraction. Only images on
  which the two models disagree add noise, so it is far narrower than an unpaired one.
- The same difference where a run kept no per-image results (older runs): Newcombe's hybrid score interval built
  from the two Wilson intervals — it ignores the pairing, so it errs on the side of "within noise".
- Runs that differ only by seed: mean ± sd and n, with a Student-t interval of the mean, never narrower than
  the Wilson interval at the mean (seeds do not sample the test set, so they do not see its noise).
A difference is "within noise" when its 95% interval contains 0.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
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


def paired(diffs: np.ndarray) -> tuple[float, float, float]:
    """(mean, low, high) in points of per-image differences ``diffs`` (each in [−1, 1]: a − b of two models'
    credit on one image): the Agresti–Min adjusted normal interval of the mean (module docstring), widened to
    hold the mean itself."""
    d = np.asarray(diffs, dtype=np.float64)
    if d.ndim != 1 or d.size == 0 or not np.isfinite(d).all():
        return math.nan, math.nan, math.nan
    mean = float(d.mean())
    m = d.size + 2  # two pseudo-images: one +1/−1 pair of half-weights, one concordant image
    centre = float(d.sum()) / m
    spread = (float(np.dot(d, d)) + 1.0) / m - centre * centre
    half = Z95 * math.sqrt(max(spread, 0.0) / m)
    return 100.0 * mean, 100.0 * min(mean, centre - half), 100.0 * max(mean, centre + half)


class PerImage:
    """Per-image top-1 credit of one stage, by seed (``{seed: float array}``); held by identity, so a table
    cell can carry it through pandas."""

    __slots__ = ("by_seed",)

    def __init__(self, by_seed: dict[str, np.ndarray]) -> None:
        self.by_seed = by_seed

    def __repr__(self) -> str:
        return f"PerImage({len(self.by_seed)} seed(s))"


def paired_delta(a: PerImage | None, b: PerImage | None) -> tuple[float, float] | None:
    """95% interval (points) of a − b over the seeds both have, paired over the images: per image the
    difference averaged over those seeds; None when either lacks per-image results or their images differ."""
    if a is None or b is None:
        return None
    seeds = [s for s in a.by_seed if s in b.by_seed]
    if not seeds or len({a.by_seed[s].shape for s in seeds} | {b.by_seed[s].shape for s in seeds}) != 1:
        return None
    diffs = np.mean([a.by_seed[s] - b.by_seed[s] for s in seeds], axis=0)
    _, low, high = paired(diffs)
    return None if math.isnan(low) else (low, high)


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
