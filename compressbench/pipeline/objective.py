"""The value a Hydra sweeper (Optuna) optimizes: what ``main`` returns for one job's rows."""
from __future__ import annotations

from typing import Any


def sweep_objective(rows: list[dict[str, Any]], cfg: Any) -> float | None:
    """The last stage's ``test_acc`` (None without rows)."""
    return rows[-1].get("test_acc") if rows else None
