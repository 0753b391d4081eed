"""``model=module``: the ``nn.Module`` a user hands to ``compressbench.run(model=...)``.

``register_module`` keeps a CPU copy of the module as given (its initial state) under its identity — the class's
qualified name and a sha256 of the source of every non-torch class in it, its printed structure and its
initial state_dict — and returns the config node naming it. The node is part of every stage key, so the same
module (same code, same initial weights) hits the cache in a later process, and an edited one recomputes.
A copy is all the pipeline ever touches: the user's module is left as it was.
"""
from __future__ import annotations

import copy
import hashlib
import inspect
from typing import Any

import torch
from torch import nn

from compressbench.config import ConfigError
from compressbench.models.sources import SOURCES, ModelSource

_GIVEN: dict[str, nn.Module] = {}
_FITS: set[tuple[str, int, int, int]] = set()  # (digest, classes, channels, size) already checked


def _source_of(cls: type) -> str:
    try:
        return inspect.getsource(cls)
    except (OSError, TypeError):  # defined where no source is kept (an exec'd string): its name stands in
        return cls.__qualname__


def module_digest(module: nn.Module) -> str:
    """sha256 of the module's identity: class name, source of its own classes, structure and initial weights."""
    h = hashlib.sha256(f"{type(module).__module__}.{type(module).__qualname__}\n".encode())
    classes = sorted({type(m) for m in module.modules() if not type(m).__module__.startswith("torch.")},
                     key=lambda c: f"{c.__module__}.{c.__qualname__}")
    for cls in classes:
        h.update(_source_of(cls).encode())
    h.update(repr(module).encode())
    for name, t in module.state_dict().items():
        h.update(f"{name}{t.dtype}{tuple(t.shape)}\n".encode())
        t = t.detach().cpu().contiguous().reshape(-1)  # 0-d tensors (BN's step counter) cannot be viewed as bytes
        h.update(memoryview(t.view(torch.uint8).numpy()) if t.numel() else b"")
    return h.hexdigest()


def register_module(module: nn.Module) -> dict[str, Any]:
    """Keep a copy of ``module`` for this process; the ``model`` node (``name: module``) that names it."""
    if not isinstance(module, nn.Module):
        raise TypeError(f"model= takes an nn.Module (or a model config name such as 'resnet20'), "
                        f"not {type(module).__name__}")
    digest = module_digest(module)
    _GIVEN.setdefault(digest, copy.deepcopy(module).cpu())
    return {"name": "module", "cls": f"{type(module).__module__}.{type(module).__qualname__}", "digest": digest}


def _check(options: dict[str, Any]) -> None:
    if options.get("digest") not in _GIVEN:
        raise ConfigError(f"model=module names the nn.Module {options.get('cls') or '?'} handed to "
                          f"compressbench.run(model=...), and this process holds none with model.digest="
                          f"{str(options.get('digest'))[:16]}; call compressbench.run(model=your_module, ...) again")


def _fits(model: nn.Module, digest: str, num_classes: int, in_channels: int, image_size: int) -> None:
    """The module takes the dataset's images and returns one logit per class, checked once before any work."""
    if (digest, num_classes, in_channels, image_size) in _FITS or torch.empty(()).device.type == "meta":
        return  # on the meta device (engine/route.py asks whether it has convs) nothing can run
    shape = (2, in_channels, image_size, image_size)
    was = model.training
    try:
        with torch.no_grad():
            out = model.eval()(torch.zeros(shape))
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"the model passed as model= fails on the dataset's images {list(shape)}: "
                         f"{type(e).__name__}: {e}; make it take {in_channels}-channel {image_size}px images") from None
    finally:
        model.train(was)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, num_classes):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"the model passed as model= returns {got} for a batch of 2, the dataset needs (2, "
                         f"{num_classes}) logits; give it a {num_classes}-way classifier")
    _FITS.add((digest, num_classes, in_channels, image_size))


def _build(num_classes: int, in_channels: int, image_size: int, cls: str | None = None,
           digest: str | None = None) -> nn.Module:
    _check({"cls": cls, "digest": digest})
    model = copy.deepcopy(_GIVEN[str(digest)])
    _fits(model, str(digest), num_classes, in_channels, image_size)
    return model


SOURCES.register("module")(ModelSource(
    build=_build, check=_check, label=lambda o: str(o.get("cls") or "module").rsplit(".", 1)[-1],
    options={"cls": None, "digest": None}))
