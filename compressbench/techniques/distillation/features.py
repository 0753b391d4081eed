"""Intermediate features by module name: validation of layer names and forward hooks that keep outputs.

FitNets and attention transfer compare what named layers of the teacher and the student produce. Names are the
``model.named_modules()`` paths (``layer2``, ``layer2.0.conv1``, ``block2``); a wrong one fails before any
training with the valid names listed.
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from compressbench.config import ConfigError
from compressbench.models import eval_mode

# Listing every module of a deep network (ResNet-56 has ~250) buries the useful names; beyond this many the
# list shows the names up to two levels deep.
MAX_LISTED = 40


def layer_names(model: nn.Module) -> list[str]:
    """Every named submodule, in definition order (the model itself, named '', excluded)."""
    return [name for name, _ in model.named_modules() if name]


def describe_names(names: Sequence[str]) -> str:
    if len(names) <= MAX_LISTED:
        return ", ".join(names)
    short = [n for n in names if n.count(".") <= 1]
    return f"{', '.join(short)} (and {len(names) - len(short)} deeper ones such as {names[-1]})"


def check_layers(model: nn.Module, names: Iterable[str], key: str, role: str) -> None:
    """Raise a ConfigError naming ``key``, the bad name and the valid ones unless every name is a submodule."""
    valid = layer_names(model)
    for name in names:
        if name not in valid:
            close = difflib.get_close_matches(name, valid, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"{key}={name!r} is not a layer of the {role} ({type(model).__name__}){hint}; "
                              f"its layers: {describe_names(valid)}")


class FeatureTap:
    """Forward hooks that keep the latest output of each named module; ``close()`` removes them.

    Use as a context manager; a model with hooks attached cannot be pickled into the stage cache, so the tap
    must be closed before the stage returns. ``calls`` counts how often each module ran since ``reset()``: a
    module run twice per forward (a shared ReLU) would keep only its last output, so callers reject it.
    """

    def __init__(self, model: nn.Module, names: Iterable[str]) -> None:
        self.outputs: dict[str, torch.Tensor] = {}
        self.calls: dict[str, int] = {}
        self._handles: list[RemovableHandle] = []
        for name in dict.fromkeys(names):
            self._handles.append(model.get_submodule(name).register_forward_hook(self._keep(name)))

    def _keep(self, name: str):
        def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            if not isinstance(output, torch.Tensor):
                raise ConfigError(f"layer '{name}' ({type(module).__name__}) returns {type(output).__name__}, "
                                  f"not a tensor; pick a layer whose output is a feature map")
            self.outputs[name] = output
            self.calls[name] = self.calls.get(name, 0) + 1

        return hook

    def reset(self) -> None:
        self.outputs.clear()
        self.calls.clear()

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.outputs[name]

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self.outputs.clear()

    def __enter__(self) -> FeatureTap:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@torch.no_grad()
def probe_shapes(model: nn.Module, names: Sequence[str], example: torch.Tensor, key: str,
                 role: str) -> dict[str, torch.Size]:
    """Output shapes of the named layers for ``example`` (eval mode, no grad); each must run once per forward."""
    with eval_mode(model), FeatureTap(model, names) as tap:
        model(example)
        for name in names:
            if tap.calls.get(name, 0) != 1:
                raise ConfigError(
                    f"{key}={name!r}: this {role} layer runs {tap.calls.get(name, 0)} times per forward "
                    f"pass, so its output is ambiguous; pick a layer that runs once (e.g. its parent block)")
        return {name: tap[name].shape for name in names}
