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


class CheckpointError(ValueError):
    """A user's weights file that cannot be used: unreadable, not a state_dict, or not fitting its model."""


class UnsafeCheckpoint(CheckpointError):
    """A user file that holds more than tensors; we refuse to unpickle it."""


SAVE_ONE = "save one with torch.save(model.state_dict(), path)"


def load_untrusted(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with errors that say what to do, in one line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist; give the path of a file saved with "
                                f"torch.save(model.state_dict(), path)")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        refused = next((line.strip() for line in str(e).splitlines() if "Unsupported global" in line), None)
        if refused is None:  # the weights-only unpickler met bytes that are no pickle it knows: not a checkpoint
            raise CheckpointError(f"{path} is not a file torch.save wrote (weights-only unpickling failed); "
                                  f"{SAVE_ONE}") from None
        raise UnsafeCheckpoint(
            f"refusing to load {path}: it holds Python objects beyond tensors, and unpickling them could run "
            f"code ({refused.removeprefix('WeightsUnpickler error: ').split('. ')[0]}). Save a plain state_dict "
            f"instead — torch.save(model.state_dict(), path) — and load it with the matching model=... config"
        ) from None
    except Exception as e:  # noqa: BLE001 — empty (EOFError), truncated (a zip error), text (KeyError, IndexError)
        first = (str(e).splitlines() or [""])[0].split(". ")[0][:120]
        raise CheckpointError(f"{path} is not a file torch.save wrote: it is empty, truncated or of another "
                              f"format ({type(e).__name__}{f': {first}' if first else ''}); {SAVE_ONE}") from None


def state_dict_of(obj: Any, path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state_dict inside a loaded checkpoint: the dict itself, or its 'state_dict' / 'model' entry."""
    if isinstance(obj, dict):
        for key in ("state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
        if obj and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
            return obj
    raise CheckpointError(f"{path} is not a state_dict (a dict of tensor names to tensors); {SAVE_ONE}")


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state_dict in a user's file, read weights-only; CheckpointError (one line) when there is none."""
    return state_dict_of(load_untrusted(path), path)


def check_fits(model: nn.Module, state: dict[str, torch.Tensor], path: str | os.PathLike,
               fix: str = "check model=... and the dataset's classes, channels and image size") -> None:
    """Raise CheckpointError, ending with ``fix``, unless ``state`` has exactly ``model``'s tensor names and
    shapes (``model`` may be on the meta device: nothing is copied)."""
    ours = model.state_dict()
    missing = [k for k in ours if k not in state]
    unexpected = [k for k in state if k not in ours]
    shapes = [f"{k} is {list(state[k].shape)} in the file, {list(v.shape)} in the model" for k, v in ours.items()
              if k in state and state[k].shape != v.shape]
    if missing or unexpected or shapes:
        found = [f"{len(shapes)} tensors of another shape ({shapes[0]})" if shapes else "",
                 f"missing {missing[:3]}{' ...' if len(missing) > 3 else ''}" if missing else "",
                 f"unexpected {unexpected[:3]}{' ...' if len(unexpected) > 3 else ''}" if unexpected else ""]
        raise CheckpointError(f"{path} does not fit {type(model).__name__}: {', '.join(f for f in found if f)}; "
                              f"{fix}")


def load_weights_(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load a user's state_dict file into ``model`` in place; names and shapes must match."""
    state = read_state_dict(path)
    check_fits(model, state, path)
    model.load_state_dict(state)
    return model
