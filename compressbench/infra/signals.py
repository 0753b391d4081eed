"""SIGINT (Ctrl-C) and SIGTERM (Slurm, Kubernetes, ``timeout``) stop a run the same way: as an ``Interrupted``
exception, raised at the next batch boundary of a training (``batch_boundaries``) or at once elsewhere.

Python's default for SIGTERM is to die on the spot, without ``finally`` blocks: no status, the reserve file left
behind. Raised as an exception instead, the run ends as ``interrupted`` with its resume state kept and one line
that says where it stopped (``where`` annotates the exception on its way up: the stage, the epoch) and how to go
on. A second signal while the first waits for a batch boundary stops at once.

Where the run is, is kept as it goes (``where`` blocks for stages, ``at`` for the epoch inside one) and copied
into the exception when it is made: a stop between two epochs still names the epoch, not only the stage.
"""
from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_pending: int | None = None  # a stop request waiting for the next batch boundary
_boundaries = 0  # > 0 while a training loop calls ``boundary()`` between batches
_places: list[str] = []  # where the run is: its ``where`` blocks, outermost first, then the ``at`` position
_blocks = 0  # how many of ``_places`` are ``where`` blocks


class Interrupted(KeyboardInterrupt):
    """The run was asked to stop by ``signal_name``; ``places`` says where it was, outermost first."""

    def __init__(self, signal_name: str) -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name
        self.places = list(_places)

    def __str__(self) -> str:
        return f"stopped by {self.signal_name}" + (f" in {', '.join(self.places)}" if self.places else "")


def _handle(signum: int, frame: FrameType | None) -> None:
    global _pending
    if _boundaries and _pending is None:  # in a training: finish the batch, then stop
        _pending = signum
        return
    _pending = None
    raise Interrupted(signal.Signals(signum).name)


@contextmanager
def stop_requests() -> Iterator[None]:
    """Within the block SIGINT and SIGTERM raise ``Interrupted`` (in the main thread, where Python runs signal
    handlers; elsewhere nothing changes). The previous handlers come back after it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _reset()
    previous = {s: signal.signal(s, _handle) for s in _SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        _reset()


def _reset() -> None:
    global _pending, _boundaries, _blocks
    _pending, _boundaries, _blocks = None, 0, 0
    _places.clear()


@contextmanager
def batch_boundaries() -> Iterator[None]:
    """Within the block a stop request waits for ``boundary()`` (or the block's end): the batch in flight ends."""
    global _boundaries
    _boundaries += 1
    try:
        yield
    finally:
        _boundaries -= 1
    boundary()


def boundary() -> None:
    """Raise ``Interrupted`` if a stop was requested since the last batch boundary."""
    global _pending
    if _pending is not None:
        signum, _pending = _pending, None
        raise Interrupted(signal.Signals(signum).name)


@contextmanager
def where(place: str) -> Iterator[None]:
    """Within the block the run is at ``place`` (a stage): a stop names it."""
    global _blocks
    depth = _blocks
    del _places[depth:]  # the enclosing block's ``at`` position ends where this block begins
    _places.append(place)
    _blocks = depth + 1
    try:
        yield
    finally:
        del _places[depth:]
        _blocks = depth


def at(place: str | None) -> None:
    """The position inside the innermost ``where`` block (an epoch), until the next ``at`` or the block's end."""
    del _places[_blocks:]
    if place is not None:
        _places.append(place)
