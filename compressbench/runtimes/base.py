"""The ``Deployable`` protocol: what a stage hands on, what ``measure`` times, what ``export`` writes.

A deployable is a model on one runtime (eager PyTorch, compiled, FX int8, PT2E int8, ONNX Runtime, OpenVINO,
fp16/bf16 casts). It declares everything the rest of the tool needs to know about it — how to run a batch, the
bytes a user would ship, its parameter and MAC counts, the fp32 reference to time it against on its own runtime,
and how it is saved and rebuilt — so no code reads ad-hoc attributes off an ``nn.Module``.

Saving writes plain files into a folder and returns JSON-able metadata; loading rebuilds from those files with
``weights_only=True`` or non-pickle formats (ONNX), never by unpickling objects (``load_tensors``).
"""
from __future__ import annotations

import gzip
import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

import torch
from torch import nn

from compressbench.infra.registry import Registry

if TYPE_CHECKING:
    from compressbench.runtimes.exporting import Exported

Counts = tuple[int, int]


class Unsupported(RuntimeError):
    """A stage cannot handle this model (an op, a layer, a combination); the message names it and what to try.
    The pipeline records the stage with status ``unsupported`` and goes no further down the chain."""


class NotDeployable(Unsupported):
    """A stage asked for something this runtime cannot do (e.g. train an int8 model)."""


@dataclass(frozen=True)
class Arch:
    """What builds a model afresh: the model config node and the dataset's shape. JSON-able."""

    model: dict[str, Any]
    num_classes: int
    in_channels: int
    image_size: int

    def build(self) -> nn.Module:
        """A fresh model of this config on the CPU; the global RNG is left as it was, nothing is downloaded."""
        from compressbench.models import build_model

        node = {k: v for k, v in self.model.items() if k != "pretrained"}  # the weights come from our files
        with torch.random.fork_rng(devices=[]):
            return build_model(node, self.num_classes, self.in_channels, self.image_size)

    def as_dict(self) -> dict[str, Any]:
        return {"model": dict(self.model), "num_classes": self.num_classes, "in_channels": self.in_channels,
                "image_size": self.image_size}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Arch:
        return cls(dict(d["model"]), int(d["num_classes"]), int(d["in_channels"]), int(d["image_size"]))

    @property
    def name(self) -> str:
        return str(self.model.get("name", ""))

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self.in_channels, self.image_size, self.image_size


class Deployable:
    """A model on one runtime. Subclasses set ``kind`` (their ``RUNTIMES`` key) and implement the methods.

    Attributes:
        runtime: the label written in the results' ``runtime`` column (e.g. ``onnxruntime-int8``).
        arch: the architecture it was made from (its input shape and model config).
    """

    kind: ClassVar[str] = ""
    trainable: ClassVar[bool] = False  # stages that train or edit weights need a trainable (eager fp32) one
    # Optional packages this runtime needs and the pip extra that installs them; none = always available.
    requires: ClassVar[tuple[tuple[str, ...], str]] = ((), "")

    @classmethod
    def available(cls) -> bool:
        import importlib.util

        return all(importlib.util.find_spec(p) is not None for p in cls.requires[0])

    @classmethod
    def install_hint(cls) -> str:
        return f'pip install "compressbench[{cls.requires[1]}]"' if cls.requires[1] else ""

    def __init__(self, arch: Arch, runtime: str) -> None:
        self.arch = arch
        self.runtime = runtime

    # --- running -------------------------------------------------------------------------------------------
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Float logits for a normalised float batch (the same input the fp32 model takes)."""
        raise NotImplementedError

    run = __call__

    def eval(self) -> Deployable:
        return self

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def timer(self, x: torch.Tensor) -> Callable[[], object]:
        """A zero-argument call that runs one timed inference on ``x`` (set-up such as sessions stays outside),
        the way a deployment calls the model: the form ``timed_form`` names."""
        return lambda: self(x)

    def timed_form(self) -> str:
        """What ``timer`` runs, for the ``timed_form`` column: the file or object a deployment calls."""
        return self.runtime

    def reference(self, fp32: Deployable) -> Deployable:
        """The fp32 model on this runtime's family, for a like-with-like ``speedup_vs_reference`` (default: given)."""
        return fp32

    # --- what it is --------------------------------------------------------------------------------------
    def artifact_bytes(self) -> bytes:
        """The bytes this artifact is stored as (``size_bytes``; ``gzip_bytes`` compresses these)."""
        raise NotImplementedError

    def size_file(self) -> str:
        """What ``artifact_bytes`` are, for the ``size_file`` column."""
        return "state_dict (with the model's code)"

    def deployable_file(self) -> tuple[str, bytes] | None:
        """(name, bytes) of the file a user runs this model from without compressbench (``deployable_file``,
        ``deployable_bytes``: what ``compression_ratio`` compares); None: the artifact itself is that file."""
        return None

    def param_counts(self) -> Counts:
        """(parameters, nonzero parameters)."""
        raise NotImplementedError

    def macs(self, example: torch.Tensor) -> Counts:
        """(macs, effective_macs) per sample of ``example``."""
        raise NotImplementedError

    def extra_metrics(self) -> dict[str, Any]:
        """Runtime-specific results fields (none by default)."""
        return {}

    # --- files --------------------------------------------------------------------------------------------
    def save(self, directory: Path) -> dict[str, Any]:
        """Write this deployable's files into ``directory``; return the metadata ``load`` needs (JSON-able)."""
        raise NotImplementedError

    @classmethod
    def load(cls, directory: Path, meta: dict[str, Any], device: torch.device) -> Deployable:
        """Rebuild from ``save``'s files and metadata (tensors read weights-only; nothing is unpickled)."""
        raise NotImplementedError

    def export(self, directory: Path, example: torch.Tensor) -> Exported:
        """Write the files a deployment loads without compressbench (``runtimes.exporting.Exported``)."""
        raise NotImplementedError(f"runtime {self.runtime} has no export")


RUNTIMES: Registry[type[Deployable]] = Registry("runtime")


@runtime_checkable
class Fp32Route(Protocol):
    """A runtime that can run an fp32 model: a ``measure.fp32_routes`` / ``quantize.fp32_routes`` choice."""

    @classmethod
    def from_fp32(cls, fp32: Any, example: torch.Tensor) -> Deployable:
        """``fp32`` (an ``Eager``) built on this runtime; ``example`` fixes the input shape where it must."""


@runtime_checkable
class Int8Calibrating(Protocol):
    """A runtime that calibrates its own int8 model: a ``quantize.backend`` of method ``static_int8``."""

    @classmethod
    def calibrate_int8(cls, fp32: Any, batches: list[torch.Tensor]) -> tuple[Deployable, list[dict[str, str]]]:
        """The int8 model calibrated on ``batches``, and its fallback report (one row per layer/op)."""


def fp32_route(name: str) -> type[Fp32Route]:
    """The runtime ``name`` as an fp32 route; TypeError when it cannot run an fp32 model."""
    runtime = RUNTIMES.get(name)
    if not isinstance(runtime, Fp32Route):
        raise TypeError(f"runtime {name} cannot run an fp32 model (it has no from_fp32)")
    return runtime  # type: ignore[return-value]


def int8_calibrating(name: str) -> type[Int8Calibrating]:
    """The runtime ``name`` as an int8 calibrator; TypeError when it calibrates no int8 model."""
    runtime = RUNTIMES.get(name)
    if not isinstance(runtime, Int8Calibrating):
        raise TypeError(f"runtime {name} calibrates no int8 model (it has no calibrate_int8)")
    return runtime  # type: ignore[return-value]


def register_runtime(cls: type[Deployable]) -> type[Deployable]:
    """Class decorator: add a Deployable to ``RUNTIMES`` under its ``kind``."""
    RUNTIMES.register(cls.kind)(cls)
    return cls


def tensor_bytes(state: dict[str, Any]) -> bytes:
    """``torch.save`` of a dict of tensors (what a state_dict file holds)."""
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def load_tensors(source: str | os.PathLike | bytes, device: torch.device | str = "cpu") -> Any:
    """Tensors and plain containers from a ``torch.save`` file or bytes, never arbitrary objects."""
    if isinstance(source, bytes):
        source = io.BytesIO(source)  # type: ignore[assignment]
    return torch.load(source, map_location=device, weights_only=True)


def gzip_size(data: bytes) -> int:
    return len(gzip.compress(data, compresslevel=6, mtime=0))
