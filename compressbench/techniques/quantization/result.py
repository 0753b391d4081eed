"""What every quantization handler returns (``Result``) and the helpers they share: the fp32 CPU copy they start
from, the calibration recipe, and the ``Unsupported`` errors naming an op. Imports no torch at load time (the
handlers' registry, ``methods``, is read before torch is imported)."""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import nn

    from compressbench.adapters import torch_ao
    from compressbench.runtimes import Deployable, Eager
    from compressbench.runtimes.base import Unsupported

Row = dict[str, str]


@dataclass
class Result:
    artifact: Deployable
    report: list[Row] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)  # name → bytes for the stage directory
    history: list[dict[str, Any]] = field(default_factory=list)  # trainings it ran (qat, weight_bits)


def fp32_cpu(model: Eager) -> Eager:
    """A CPU, contiguous-format fp32 copy of ``model``: what every int8 backend starts from."""
    import torch

    from compressbench.runtimes import Eager

    module = copy.deepcopy(model.module).cpu().eval().to(memory_format=torch.contiguous_format)
    return Eager(module, model.arch)


def op_named(error: Exception) -> str:
    """The operator an error message names, if any (for the ``unsupported`` row)."""
    text = str(error)
    for pattern in (r"Could not run '([^']+)'", r"operator '?([\w:.]+)'? to ONNX", r"aten::\w+", r"aten\.\w+"):
        m = re.search(pattern, text)
        if m:
            return m.group(1) if m.groups() else m.group(0)
    return ""


def unsupported_because(what: str, error: Exception, instead: str) -> Unsupported:
    from compressbench.runtimes.base import Unsupported

    op = op_named(error)
    return Unsupported(f"{what}{f' (op {op})' if op else ''}: {type(error).__name__}: {str(error)[:400]}. "
                       f"{instead}")


def need_int8(report: list[Row], model: nn.Module, backend: str) -> None:
    from compressbench.runtimes.base import Unsupported

    if not any(r["status"] == "int8" for r in report):
        raise Unsupported(f"{backend} quantized no layer of {type(model).__name__}: every op stayed float "
                          "(see fallback.csv); try another quantize.backend")


def recipe_of(cfg: Any, batches: list[torch.Tensor]) -> torch_ao.Recipe:
    from compressbench.adapters import torch_ao

    return torch_ao.Recipe(observer=cfg.resolved_observer, per_channel=cfg.per_channel, skip=list(cfg.skip),
                           example_shape=(1, *batches[0].shape[1:]))
