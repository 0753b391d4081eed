"""Pruning schedules: how the final amount is reached.

- ``oneshot``: all at once.
- ``iterative``: ``rounds`` of prune → retrain, round k pruning ``k/rounds`` of the amount (Han et al. 2015).
- ``agp``: automated gradual pruning (Zhu & Gupta 2017, "To prune, or not to prune") *during* training: every
  ``frequency`` optimizer steps between ``start`` and ``end`` (fractions of the steps) the sparsity rises along
  s_t = s_f (1 - (1 - p_t)^3), p_t the progress from start to end, so most weights go early while the
  network can still recover, and the last few slowly. Pruned weights are held at zero after every step.

The names are ``choices.SCHEDULES``; the prune stage dispatches on them.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from compressbench.engine import Callback

Masks = dict[str, torch.Tensor]


def cubic(progress: float) -> float:
    """Zhu & Gupta's fraction of the final sparsity reached at ``progress`` in [0, 1] (initial sparsity 0)."""
    p = min(max(progress, 0.0), 1.0)
    return 1.0 - (1.0 - p) ** 3


def iterative_fractions(rounds: int) -> list[float]:
    return [(k + 1) / rounds for k in range(rounds)]


class GradualPruning(Callback):
    """The AGP schedule as an ``engine.fit`` callback.

    Args:
        prune: ``prune(model, fraction) -> keep-masks by layer name``, zeroing ``fraction`` of the final
            amount (``unstructured.prune_weights_`` with the stage's spec bound).
        layers: name → module of the masked layers (to re-apply masks after each optimizer step).
        start, end: fractions of all training steps where pruning begins and where it reaches the amount.
        frequency: optimizer steps between two pruning events (Zhu & Gupta's Δt).
    """

    def __init__(self, prune: Callable[[nn.Module, float], Masks], layers: dict[str, nn.Module], start: float,
                 end: float, frequency: int) -> None:
        self.prune, self.layers = prune, layers
        self.start, self.end, self.frequency = start, end, frequency
        self.masks: Masks = {}
        self.fraction = 0.0
        self.events: list[tuple[int, float]] = []  # (step, fraction of the final amount) of each pruning event
        self.first = self.last = 0
        self.started = False

    def on_train_begin(self, model: nn.Module, steps_per_epoch: int, epochs: int) -> None:
        total = max(steps_per_epoch * epochs, 1)
        self.first = min(int(self.start * total), total - 1)
        self.last = max(self.first, min(int(round(self.end * total)), total) - 1)
        self.masks, self.fraction, self.events, self.started = {}, 0.0, [], False

    @torch.no_grad()
    def after_step(self, model: nn.Module, step: int) -> None:
        resumed, self.started = not self.started and step > self.first, True  # engine.fit resumed mid-way
        due = resumed or (step >= self.first and ((step - self.first) % self.frequency == 0 or step >= self.last))
        if due and self.fraction < 1.0:
            span = max(self.last - self.first, 1)
            fraction = 1.0 if step >= self.last else cubic((step - self.first) / span)
            if fraction > self.fraction:
                self.fraction = fraction
                self.masks = self.prune(model, fraction)
                self.events.append((step, fraction))
                return
        for name, mask in self.masks.items():
            self.layers[name].weight.mul_(mask)
