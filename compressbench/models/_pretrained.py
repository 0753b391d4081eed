"""Load torchvision's ImageNet weights into our variants: every tensor whose name and shape match.

Our variants differ from the ImageNet models where the task differs (classifier size, a 3x3 stem for small
images, a grayscale first conv), so loading is by name and shape, never strict; what was skipped is printed.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import torch
from torch import nn

if TYPE_CHECKING:
    from torchvision.models import WeightsEnum

log = logging.getLogger(__name__)

StateDict = dict[str, torch.Tensor]


def _module(key: str) -> str:
    return key.rpartition(".")[0]


def checkpoint_path(weights: WeightsEnum) -> Path:
    """Where torch.hub looks for the weights before downloading: ``$TORCH_HOME/hub/checkpoints/<file>``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(weights.url).path).name


def fetch_state_dict(weights: WeightsEnum, model_name: str) -> StateDict:
    """The state dict from torch.hub's cache, downloaded if needed; a clear error when offline."""
    try:
        return weights.get_state_dict(progress=True)
    except Exception as e:  # URLError, HTTPError, timeouts, a truncated file: the advice is the same
        target = checkpoint_path(weights)
        raise RuntimeError(
            f"could not download the ImageNet weights for model '{model_name}' ({weights}) from "
            f"{weights.url}: {type(e).__name__}: {e}. Download that file where there is network access and "
            f"put it at {target} ($TORCH_HOME/hub/checkpoints/{target.name}; TORCH_HOME defaults to "
            f"~/.cache/torch) so torch.hub finds it, or set model.pretrained=false to train from scratch."
        ) from e


def load_pretrained_(
    model: nn.Module,
    weights: WeightsEnum,
    model_name: str,
    rename: Callable[[StateDict], StateDict] | None = None,
) -> nn.Module:
    """Copy the tensors of ``weights`` whose names and shapes match ``model``'s; print what was skipped.

    Args:
        model: the freshly built model, changed in place.
        weights: a torchvision weights enum member, e.g. ``ResNet50_Weights.DEFAULT``.
        model_name: the registry name, for messages.
        rename: maps the checkpoint's keys to the model's (DenseNet checkpoints use old names).
    """
    state = fetch_state_dict(weights, model_name)
    if rename is not None:
        state = rename(state)
    return load_matching_(model, state, model_name, str(weights))


def load_matching_(model: nn.Module, state: StateDict, model_name: str, source: str) -> nn.Module:
    """Copy the tensors of ``state`` whose names and shapes match ``model``'s; log what was skipped."""
    own = model.state_dict()
    fits = {k for k, v in state.items() if k in own and own[k].shape == v.shape}
    # A module loads all its tensors or none: a 3x3 conv keeps no bias of the 11x11 conv it replaced.
    broken = {_module(k) for k in state if k not in fits}
    matched = {k: state[k] for k in state if k in fits and _module(k) not in broken}
    model.load_state_dict(matched, strict=False)
    skipped = [k for k in state if k not in matched]
    # BN's step counter is absent from older checkpoints and meaningless to transfer.
    absent = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    log.info("model '%s': loaded %d/%d tensors of %s", model_name, len(matched), len(state), source)
    if skipped:
        log.info("  skipped (name or shape differs in this variant): %s", ", ".join(skipped))
    if absent:
        log.info("  not in the checkpoint, left at their initial values: %s", ", ".join(absent))
    return model
