"""Models from outside the zoo: torchvision's classification models by name (``model=torchvision``) and any
importable function or ``nn.Module`` class (``model=callable``); ``models/given.py`` adds the module a user
hands to ``compressbench.run(model=...)`` (``model=module``).

Each is a ``ModelSource`` in ``SOURCES`` (= ``conf/model/<name>.yaml``). It checks its node before any work
(imports, names, arguments: one ``ConfigError`` naming the key), builds the model for the dataset's shape, names
it for the results' ``model`` column, and adds to the stage key what its config does not say (the builder's
source file, a weights file's content), so an edited model file recomputes every stage.
"""
from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from compressbench.config import ConfigError, resolve_path
from compressbench.config.targets import instantiate, locate
from compressbench.infra.hashing import file_sha256
from compressbench.infra.registry import Registry

SHAPE_ARGS = ("num_classes", "in_channels", "image_size")


@dataclass(frozen=True)
class ModelSource:
    """How one kind of outside model is checked, built, named and keyed (``options``: its YAML's keys)."""

    build: Callable[..., nn.Module]  # (num_classes, in_channels, image_size, **options)
    check: Callable[[dict[str, Any]], None]
    label: Callable[[dict[str, Any]], str]
    identity: Callable[[dict[str, Any]], dict[str, Any]] = lambda options: {}
    options: dict[str, Any] = field(default_factory=dict)


SOURCES: Registry[ModelSource] = Registry("model")


def shape_kwargs(fn: Any, values: dict[str, int], by_convention: tuple[str, ...] = ("num_classes",)) -> dict[str, int]:
    """Which of the dataset's ``num_classes``/``in_channels``/``image_size`` ``fn`` takes, by its signature: the
    ones it names, and under ``**kwargs`` the conventional ``num_classes`` (torchvision's and timm's builders)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # a builtin without a signature: pass nothing
        return {}
    named = {k for k, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    var_kw = any(p.kind == p.VAR_KEYWORD for p in params.values())
    return {k: v for k, v in values.items() if k in named or (var_kw and k in by_convention)}


def check_args_by_meta_build(build: Callable[[], nn.Module], key: str) -> None:
    """Build on the meta device (no memory, no init cost) so a wrong argument fails before any work."""
    try:
        with torch.device("meta"):
            model = build()
    except TypeError as e:
        raise ConfigError(f"{key}: {e}; fix the arguments (the builder's signature says which it takes)") from None
    except Exception:  # noqa: BLE001  (a builder that computes on its weights: the real build will tell)
        return
    if not isinstance(model, nn.Module):
        raise ConfigError(f"{key}: the builder returned {type(model).__name__}, not an nn.Module; point it at a "
                          f"function or class that returns the model")


def source_file_sha256(obj: Any) -> str | None:
    """sha256 of the file ``obj`` is defined in (its module's file when it has none of its own)."""
    for candidate in (obj, inspect.getmodule(obj)):
        try:
            path = inspect.getsourcefile(candidate) if candidate is not None else None
        except TypeError:
            path = None
        if path and Path(path).is_file():
            return file_sha256(Path(path))
    return None


def first_conv_for_(model: nn.Module, in_channels: int) -> nn.Module:
    """A 3-channel network's first conv made to take ``in_channels``: its weights summed (or tiled) over the
    input channels, so pretrained filters still respond to grayscale images as to the same grey RGB image."""
    for path, child in model.named_modules():  # the first conv in definition order takes the image
        if isinstance(child, nn.Conv2d) and child.in_channels == 3 and child.groups == 1:
            new = nn.Conv2d(in_channels, child.out_channels, child.kernel_size, child.stride, child.padding,
                            child.dilation, 1, child.bias is not None, child.padding_mode)
            with torch.no_grad():
                w = child.weight.sum(1, keepdim=True)
                new.weight.copy_(w if in_channels == 1 else w.repeat(1, in_channels, 1, 1) / in_channels)
                if child.bias is not None:
                    new.bias.copy_(child.bias)
            parent, _, name = path.rpartition(".")
            setattr(model.get_submodule(parent), name, new)
            break
    return model


# --- model=callable -------------------------------------------------------------------------------------------

def _callable_check(options: dict[str, Any]) -> None:
    target, args = options.get("target"), options.get("args") or {}
    if target is None:
        raise ConfigError("model=callable needs model.target: the dotted path of a function or nn.Module class "
                          "that returns the model, e.g. model.target=my_pkg.nets.build_net")
    if not isinstance(args, dict):
        raise ConfigError(f"model.args={args!r} is not allowed: keyword arguments, e.g. 'model.args={{width:64}}'")
    fn = locate(target, "model.target")
    if not callable(fn):
        raise ConfigError(f"model.target={target} is a {type(fn).__name__}, not a function or class")
    shape = shape_kwargs(fn, {"num_classes": 10, "in_channels": 3, "image_size": 32})
    check_args_by_meta_build(lambda: instantiate(target, "model.target", {**shape, **args}), "model.args")


def _callable_build(num_classes: int, in_channels: int, image_size: int, target: str | None = None,
                    args: dict[str, Any] | None = None) -> nn.Module:
    fn = locate(target, "model.target")
    shape = shape_kwargs(fn, {"num_classes": num_classes, "in_channels": in_channels, "image_size": image_size})
    return instantiate(str(target), "model.target", {**shape, **(args or {})})


SOURCES.register("callable")(ModelSource(
    build=_callable_build, check=_callable_check,
    label=lambda o: str(o.get("target") or "callable").rsplit(".", 1)[-1],
    identity=lambda o: {"source_sha256": source_file_sha256(locate(o["target"], "model.target"))},
    options={"target": None, "args": None}))


# --- model=torchvision ----------------------------------------------------------------------------------------

def _tv():
    import torchvision.models  # on first use: it imports torch._dynamo (a second at start-up)

    return torchvision.models


def _weights_of(arch: str, pretrained: Any) -> tuple[Any, Path | None]:
    """(torchvision weights enum member or None, state_dict file or None) that ``model.pretrained`` names."""
    if pretrained is False or pretrained is None:
        return None, None
    tv = _tv()
    enum = tv.get_model_weights(arch)
    if pretrained is True or pretrained == "DEFAULT":
        return enum.DEFAULT, None
    if isinstance(pretrained, str) and pretrained in enum.__members__:
        return enum[pretrained], None
    if isinstance(pretrained, str) and resolve_path(pretrained).is_file():
        return None, resolve_path(pretrained)
    raise ConfigError(f"model.pretrained={pretrained!r} is not allowed: false, true (torchvision's default "
                      f"weights, {enum.DEFAULT.name}), one of {', '.join(enum.__members__)}, or the path of a "
                      f"state_dict file (torch.save(model.state_dict(), path))")


def _tv_check(options: dict[str, Any]) -> None:
    arch, args = options.get("arch"), options.get("args") or {}
    names = _tv().list_models(module=_tv())  # the classification models
    if arch not in names:
        close = difflib.get_close_matches(str(arch), names, n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise ConfigError(f"model.arch={arch!r} is not a torchvision classification model; {hint}"
                          f"torchvision.models.list_models(module=torchvision.models) lists all {len(names)}")
    if not isinstance(args, dict):
        raise ConfigError(f"model.args={args!r} is not allowed: keyword arguments, e.g. 'model.args={{dropout:0.1}}'")
    _weights_of(arch, options.get("pretrained", False))
    check_args_by_meta_build(lambda: _tv().get_model(arch, weights=None, **_tv_kwargs(arch, 10, 32), **args),
                             "model.args")


def _tv_kwargs(arch: str, num_classes: int, image_size: int) -> dict[str, int]:
    # Every classification builder takes num_classes; only the ViTs take the image size (their position table).
    vit = _tv().get_model_builder(arch).__module__.endswith("vision_transformer")
    return {"num_classes": num_classes, **({"image_size": image_size} if vit else {})}


def _tv_build(num_classes: int, in_channels: int, image_size: int, arch: str | None = None,
              pretrained: Any = False, args: dict[str, Any] | None = None) -> nn.Module:
    from compressbench.infra.safe_load import load_untrusted, state_dict_of
    from compressbench.models._pretrained import fetch_state_dict, load_matching_

    model = _tv().get_model(arch, weights=None, **_tv_kwargs(arch, num_classes, image_size), **(args or {}))
    weights, file = _weights_of(str(arch), pretrained)
    if weights is not None or file is not None:
        state = fetch_state_dict(weights, str(arch)) if weights is not None else state_dict_of(
            load_untrusted(file), file)
        load_matching_(model, state, str(arch), str(weights or file))  # the classifier's shape differs: skipped
    return first_conv_for_(model, in_channels) if in_channels != 3 else model


def _tv_identity(options: dict[str, Any]) -> dict[str, Any]:
    _, file = _weights_of(str(options["arch"]), options.get("pretrained", False))
    return {"weights_sha256": file_sha256(file)} if file is not None else {}


SOURCES.register("torchvision")(ModelSource(
    build=_tv_build, check=_tv_check, label=lambda o: str(o.get("arch")), identity=_tv_identity,
    options={"arch": None, "pretrained": False, "args": None}))
