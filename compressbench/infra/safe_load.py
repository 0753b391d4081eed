"""Loading files a user points us at, safely.

A PyTorch file is a pickle, and unpickling can run arbitrary code. Files from users (initial weights, teacher
checkpoints) are therefore loaded with ``weights_only=True``: tensors and plain containers only. Full
unpickling is kept for our own stage-cache entries, whose checksums we wrote (cache.py).
"""
from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn


class UnsafeCheckpoint(ValueError):
    """A user file that holds more than tensors; we refuse to unpickle it."""


def load_untrusted(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with errors that say what to do."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist; give the path of a file saved with "
                                f"torch.save(model.state_dict(), path)")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise UnsafeCheckpoint(
            f"refusing to load {path}: it holds Python objects beyond tensors, and unpickling them could run "
            f"code ({str(e).splitlines()[0]}). Save a plain state_dict instead — torch.save(model.state_dict(), "
            f"path) — and load it with the matching model=... config") from None


def state_dict_of(obj: Any, path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state_dict inside a loaded checkpoint: the dict itself, or its 'state_dict' / 'model' entry."""
    if isinstance(obj, dict):
        for key in ("state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
        if all(isinstance(v, torch.Tensor) for v in obj.values()):
            return obj
    raise UnsafeCheckpoint(f"{path} is not a state_dict (a dict of tensor names to tensors); save one with "
                           f"torch.save(model.state_dict(), path)")


def load_weights_(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load a user's state_dict file into ``model`` in place; shapes and names must match."""
    state = state_dict_of(load_untrusted(path), path)
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(f"{path} does not fit this model: missing {result.missing_keys[:5]}, unexpected "
                         f"{result.unexpected_keys[:5]}; check model=... and the dataset's classes/channels")
    return model
