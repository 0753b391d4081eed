"""``Checkpoint``: one training's resumable state and its per-epoch history, in the stage's cache entry."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from compressbench.infra.atomic import atomic_torch_save
from compressbench.results import write_csv

log = logging.getLogger("compressbench.engine.env")  # the name its messages have always carried


class Checkpoint:
    """One training run's resumable state (``<slot>resume.pt``) and its per-epoch ``history.csv``.

    ``path`` is None when nothing may be kept (caching off under torchrun); only the writer (rank 0) writes.
    """

    def __init__(self, path: Path | None, key: str, history_dir: Path | None, writer: bool, label: str) -> None:
        self.path, self.key, self.history_dir, self.writer, self.label = path, key, history_dir, writer, label

    def load(self) -> dict[str, Any] | None:
        """The state of an interrupted earlier run of this same training, if it is ours and intact.

        Loaded on the CPU: the RNG states must stay there (``torch.set_rng_state`` takes a CPU tensor), and
        ``load_state_dict`` moves model and optimizer tensors to their parameters' device.
        """
        if self.path is None or not self.path.is_file():
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 — unreadable or not tensors-only: never trusted, start afresh
            log.warning("not resuming %s: %s is unreadable or holds more than tensors (%s); starting afresh",
                        self.label, self.path, type(e).__name__)
            return None
        if not isinstance(state, dict) or state.get("key") != self.key:
            log.warning("not resuming %s from %s: it was made with a different config or earlier stages; "
                        "starting afresh", self.label, self.path)
            return None
        log.warning("resuming %s after epoch %s from %s", self.label, state["epoch"], self.path)
        return state

    def save(self, state: dict[str, Any]) -> None:
        if self.path is not None and self.writer:
            atomic_torch_save({**state, "key": self.key}, self.path)

    def history(self, rows: list[dict[str, Any]]) -> None:
        if self.history_dir is not None and self.writer:
            write_csv(self.history_dir / "history.csv", rows)

    def finish(self, best: dict[str, torch.Tensor], last: dict[str, torch.Tensor]) -> None:
        """``best.pt`` and ``last.pt`` (state dicts) beside the history, for users who want the weights."""
        if self.history_dir is not None and self.writer:
            atomic_torch_save(best, self.history_dir / "best.pt")
            atomic_torch_save(last, self.history_dir / "last.pt")

    def clear(self) -> None:
        if self.path is not None and self.writer:
            self.path.unlink(missing_ok=True)
