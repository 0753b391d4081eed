"""A model's architecture as data: what differs from the freshly built model, so it can be rebuilt safely.

Compression changes architectures: channel pruning shrinks layers in place (``in_channels``, ``num_features``
and the weights' shapes), low-rank factorization swaps a layer for a ``Sequential`` of two thinner ones. Saving
such a model whole would mean pickling it, and loading a pickle can run code. Instead ``describe(model, base)``
records, against ``base`` (the same model config built afresh), the layers whose class changed (as
constructor specs of an allow-list of ``torch.nn`` classes) and the plain attributes (ints, floats, tuples) that
changed. ``rebuild(base, structure, state)`` replays that on a fresh ``base`` and loads the state_dict —
tensors only, read with ``weights_only=True``. No class name from a file is ever imported: an unknown one is
an error.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
from torch import nn

# Constructor arguments of the layers a compression may put into a model, read back from an instance.
_CONV = ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups", "padding_mode")
_NORM = ("num_features", "eps", "momentum", "affine", "track_running_stats")
LAYERS: dict[str, tuple[type[nn.Module], tuple[str, ...]]] = {
    "Conv1d": (nn.Conv1d, _CONV), "Conv2d": (nn.Conv2d, _CONV), "Conv3d": (nn.Conv3d, _CONV),
    "Linear": (nn.Linear, ("in_features", "out_features")),
    "BatchNorm1d": (nn.BatchNorm1d, _NORM), "BatchNorm2d": (nn.BatchNorm2d, _NORM),
    "BatchNorm3d": (nn.BatchNorm3d, _NORM),
    "Identity": (nn.Identity, ()), "ReLU": (nn.ReLU, ("inplace",)), "Flatten": (nn.Flatten, ("start_dim", "end_dim")),
}
_HAS_BIAS = ("Conv1d", "Conv2d", "Conv3d", "Linear")
_PLAIN = (int, float, bool, str, type(None))


class StructureError(ValueError):
    """A model whose architecture cannot be described as data (a layer class outside the allow-list)."""


def _plain(value: Any) -> bool:
    if isinstance(value, (tuple, list)):
        return all(_plain(v) for v in value)
    return isinstance(value, _PLAIN)


def _attrs(m: nn.Module) -> dict[str, Any]:
    return {k: v for k, v in vars(m).items() if not k.startswith("_") and k != "training" and _plain(v)}


def layer_spec(m: nn.Module) -> dict[str, Any]:
    """The constructor spec of ``m`` (recursively for ``Sequential``)."""
    if type(m) is nn.Sequential:
        return {"class": "Sequential", "children": [[n, layer_spec(c)] for n, c in m.named_children()]}
    name = type(m).__name__
    if name not in LAYERS or LAYERS[name][0] is not type(m):
        raise StructureError(f"cannot describe a {type(m).__module__}.{name} layer as data (allowed: Sequential, "
                             f"{', '.join(LAYERS)}); a stage that inserts new layer types must use these")
    kwargs = {k: getattr(m, k) for k in LAYERS[name][1]}
    if name in _HAS_BIAS:
        kwargs["bias"] = m.bias is not None
    return {"class": name, "kwargs": kwargs}


def build_layer(spec: dict[str, Any]) -> nn.Module:
    """The layer ``spec`` describes (weights uninitialised-but-valid; the state_dict fills them)."""
    if spec["class"] == "Sequential":
        return nn.Sequential(OrderedDict((n, build_layer(s)) for n, s in spec["children"]))
    if spec["class"] not in LAYERS:
        raise StructureError(f"unknown layer class {spec['class']!r} in a model structure (allowed: Sequential, "
                             f"{', '.join(LAYERS)})")
    cls, _ = LAYERS[spec["class"]]
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in spec["kwargs"].items()}
    return cls(**kwargs)


def describe(model: nn.Module, base: nn.Module) -> dict[str, Any]:
    """What ``model`` changed against ``base`` (a fresh build of the same config), as JSON-able data."""
    if type(model) is not type(base):
        raise StructureError(f"the model is a {type(model).__name__}, its config builds a {type(base).__name__}")
    ours, theirs = dict(model.named_modules()), dict(base.named_modules())
    replaced: dict[str, Any] = {}
    attrs: dict[str, Any] = {}
    for name, m in ours.items():
        if any(name.startswith(p + ".") for p in replaced):
            continue
        b = theirs.get(name)
        if b is None or type(b) is not type(m):
            replaced[name] = layer_spec(m)
            continue
        before = _attrs(b)
        changed = {k: v for k, v in _attrs(m).items() if before.get(k, object()) != v}
        if changed:
            attrs[name] = changed
    gone = [n for n in theirs if n and n not in ours and not any(n.startswith(p + ".") for p in replaced)]
    if gone:
        raise StructureError(f"layers removed from the model ({', '.join(gone[:5])}) cannot be described; "
                             "replace a layer with nn.Identity instead of deleting it")
    return {"replaced": replaced, "attrs": attrs}


def _set_module(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, leaf, module)


def rebuild(base: nn.Module, structure: dict[str, Any], state: dict[str, torch.Tensor]) -> nn.Module:
    """``base`` changed as ``structure`` says, holding the tensors of ``state`` (every key must fit)."""
    for name, spec in structure.get("replaced", {}).items():
        _set_module(base, name, build_layer(spec))
    for name, changed in structure.get("attrs", {}).items():
        m = base.get_submodule(name)
        for key, value in changed.items():
            old = getattr(m, key, None)
            setattr(m, key, tuple(value) if isinstance(old, tuple) and isinstance(value, list) else value)
    own = {**dict(base.named_parameters()), **dict(base.named_buffers())}
    for key, tensor in state.items():
        current = own.get(key)
        if current is None or current.shape == tensor.shape:
            continue
        owner, _, leaf = key.rpartition(".")
        m = base.get_submodule(owner) if owner else base
        fresh = torch.empty(tensor.shape, dtype=tensor.dtype)
        if isinstance(current, nn.Parameter):
            setattr(m, leaf, nn.Parameter(fresh, requires_grad=current.requires_grad))
        else:
            m.register_buffer(leaf, fresh, persistent=leaf not in m._non_persistent_buffers_set)
    result = base.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise StructureError(f"the saved weights do not fit the described model: missing "
                             f"{result.missing_keys[:5]}, unexpected {result.unexpected_keys[:5]}")
    return base
