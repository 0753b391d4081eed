"""The model zoo: ``MODELS[name](num_classes, in_channels, image_size, **options)`` and ``build_model``.

Registry key = ``conf/model/<name>.yaml`` = ``model=<name>`` on the command line. Every builder works for
2..1000 classes, 1 or 3 input channels and square images from 8x8 up, switching to a CIFAR-style variant where
the ImageNet design would collapse a small image (each builder's docstring says where). The models are plain
``nn.Module`` graphs that ``torch.fx.symbolic_trace`` can trace.
"""
from __future__ import annotations

import difflib
import inspect
import json
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf
from torch import nn

from compressbench.config import ConfigError
from compressbench.models import alexnet, densenet, lenet, resnet, resnet_cifar, small_cnn, vgg  # noqa: F401  (register)
from compressbench.models._common import MODELS, eval_mode
from compressbench.models.given import register_module
from compressbench.models.sources import SOURCES

__all__ = ["MODELS", "SOURCES", "build_model", "check_model_config", "eval_mode", "model_identity", "model_label",
           "model_names", "model_options", "register_module"]

_ARGS = ("num_classes", "in_channels", "image_size")
_CHECKED: set[str] = set()


def model_names() -> list[str]:
    """Every ``model=NAME``: the zoo's models and the outside sources (torchvision, callable, module)."""
    return sorted([*MODELS.names(), *SOURCES.names()])


def model_options(name: str) -> dict[str, Any]:
    """The options model ``name`` accepts, with their defaults (an unknown name lists the valid ones)."""
    if name in SOURCES:
        return dict(SOURCES.get(name).options)
    if name not in MODELS:
        from compressbench.infra.registry import UnknownNameError

        raise UnknownNameError(f"unknown model '{name}'; valid models: {', '.join(model_names())}")
    params = inspect.signature(MODELS.get(name)).parameters
    return {k: p.default for k, p in params.items() if k not in _ARGS}


def check_model_config(cfg: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """Split the ``model`` node into its name and options; unknown names and option keys fail here.

    Cheap (builds nothing), so config validation can call it before any work.
    """
    node = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    assert isinstance(node, dict)
    if "name" not in node:
        names = ", ".join(model_names())
        raise ConfigError(f"the model config has no 'name'; pick one with model=NAME: {names}")
    name = str(node.pop("name"))
    accepted = model_options(name)
    for key in node:
        if key not in accepted:
            listed = ", ".join(f"{k} (default {v!r})" for k, v in accepted.items()) or "none"
            close = difflib.get_close_matches(str(key), list(accepted), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"model '{name}' has no option '{key}'{hint}; accepted options: {listed}")
    if name in SOURCES:  # outside code: importable, its names and arguments right (once per node a process)
        seen = json.dumps({"name": name, **node}, sort_keys=True, default=str)
        if seen not in _CHECKED:
            SOURCES.get(name).check({**SOURCES.get(name).options, **node})
            _CHECKED.add(seen)
    return name, node


def model_identity(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """What the stage keys hold of the model: its config node, and for outside models what the node does not
    say (the builder's source file, a weights file). A zoo model's is its node, unchanged."""
    name, options = check_model_config(cfg)
    node = {"name": name, **options}
    return {**node, **SOURCES.get(name).identity({**SOURCES.get(name).options, **options})} if name in SOURCES \
        else node


def model_label(cfg: Mapping[str, Any]) -> str:
    """The results' ``model`` column: the zoo name, torchvision's architecture, the builder's or class's name."""
    node = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    name = str(node.get("name"))
    return SOURCES.get(name).label({**SOURCES.get(name).options, **node}) if name in SOURCES else name


def build_model(cfg: Mapping[str, Any], num_classes: int, in_channels: int, image_size: int) -> nn.Module:
    """Build the model the ``model`` config node names.

    Args:
        cfg: the ``model`` node (DictConfig or dict): ``name`` picks ``MODELS[name]``; every other key is
            passed as a keyword option.
        num_classes: classes of the dataset (>= 2).
        in_channels: 1 or 3.
        image_size: side of the square input images (>= 8).

    Raises:
        ValueError: an unknown option key or a value out of range; the message says what is allowed.
        UnknownNameError: an unknown model name; the message lists the registered ones.
    """
    name, options = check_model_config(cfg)
    builder = SOURCES.get(name).build if name in SOURCES else MODELS.get(name)
    return builder(num_classes, in_channels, image_size, **options)
