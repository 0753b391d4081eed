"""Two-sided 95% quantiles of Student's t: the intervals of reports and the stopping rule of adaptive timing.

scipy is not needed for these few values; between tabled degrees of freedom the next smaller one is used (a
slightly wider interval, never a narrower one).
"""
from __future__ import annotations

import math

Z95 = 1.959963984540054
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
        12: 2.179, 15: 2.131, 20: 2.086, 30: 2.042, 60: 2.000}


def t95(dof: int) -> float:
    """The 97.5% quantile of Student's t with ``dof`` degrees of freedom (the next smaller tabled dof)."""
    if dof < 1:
        return math.nan
    return _T95[max(k for k in _T95 if k <= dof)] if dof <= 60 else Z95
