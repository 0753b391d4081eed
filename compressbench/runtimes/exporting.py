"""Deployable files a user takes away, and their check in a process that cannot import compressbench.

``export_fp32`` writes an fp32 model as ONNX (any runtime) and as a ``torch.export`` program (``.pt2``, plain
torch). ``verify`` runs ``verify_exported.py`` in a fresh interpreter with compressbench blocked from import:
it loads each file with plain torch / onnxruntime / openvino, runs the test images and compares with the
logits of the run, as a deployment would see them.

FX int8 deploys as TorchScript (``torch.jit.trace``), which torch 2.14 deprecates, and not as a ``.pt2``; checked on
torch 2.14.1 (issue 25; ``tests/unit/test_export_route.py`` fails the day either reason goes away):

- ``torch.export`` cannot export it: its packed int8 weights are TorchScript objects
  (``torch.classes.quantized.Conv2dPackedParamsBase``) without a fake class, so non-strict export fails with
  "does not have a field with name '__obj_flatten__'" and strict export with "Missing as_proxy()"
  (pytorch/pytorch#137111).
- ``torch.export.load`` is not pickle-free: it reads a ``.pt2``'s sample inputs with ``torch.load(weights_only=True)``
  and, when that fails, again with full unpickling; entries the archive marks ``use_pickle`` load fully unpickled
  too (``pickle.loads``). The file decides, so a crafted ``.pt2`` runs code when loaded
  (pytorch/pytorch#153410) — which is why the README says to load ``.pt2`` files of your own only.

``torch.jit.load`` reads its archive's pickles with TorchScript's own unpickler, which refuses any Python global.
torch's deprecation notices of ``torch.jit`` are said once per process in the log, not once per trace, save and load.
"""
from __future__ import annotations

import io
import json
import logging
import re
import subprocess
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

# Largest |exported - in-run| logit difference accepted, relative to the logits' scale, per file format: the same
# kernels give (nearly) the same numbers; another runtime's fp32 kernels differ by rounding only.
TOLERANCE = {"onnx": 1e-3, "torch.export": 1e-4, "torchscript": 1e-4, "openvino": 1e-3}
VERIFIER = Path(__file__).with_name("verify_exported.py")
log = logging.getLogger(__name__)


@dataclass
class Exported:
    """What an export wrote: file name → format, formats it could not write (format → why), and per file a
    tolerance other than its format's (a file that runs other kernels than the run did)."""

    files: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    tolerance: dict[str, float] = field(default_factory=dict)

    def merge(self, other: Exported) -> Exported:
        return Exported({**self.files, **other.files}, {**self.skipped, **other.skipped},
                        {**self.tolerance, **other.tolerance})

    def tolerance_of(self, name: str) -> float:
        return self.tolerance.get(name, TOLERANCE[self.files[name]])


def export_fp32(module: nn.Module, directory: Path, example: torch.Tensor, stem: str = "model") -> Exported:
    """``<stem>.onnx`` (dynamic batch) and ``<stem>.pt2`` (torch.export, dynamic batch) of ``module``."""
    from compressbench.adapters import onnx as onnx_adapter

    out = Exported()
    module = module.cpu().eval()
    example = example.cpu().contiguous()
    try:
        data, _ = onnx_adapter.export(module, example)
        (directory / f"{stem}.onnx").write_bytes(data)
        out.files[f"{stem}.onnx"] = "onnx"
    except Exception as e:  # noqa: BLE001 — an op without an ONNX symbolic: say so in the manifest
        out.skipped["onnx"] = f"{type(e).__name__}: {str(e)[:200]}"
    try:
        batch = example if len(example) >= 2 else example.repeat(2, *([1] * (example.dim() - 1)))
        program = torch.export.export(module, (batch,), dynamic_shapes=({0: torch.export.Dim("batch")},))
        torch.export.save(program, directory / f"{stem}.pt2")
        out.files[f"{stem}.pt2"] = "torch.export"
    except Exception as e:  # noqa: BLE001
        out.skipped["torch.export"] = f"{type(e).__name__}: {str(e)[:200]}"
    return out


def torchscript_bytes(module: nn.Module, example: torch.Tensor) -> bytes:
    """The file of a traced TorchScript ``module`` (for int8 eager kernels, which have no other standalone form)."""
    with torch.no_grad(), _jit_quiet():
        traced = torch.jit.trace(module.eval(), example.cpu().contiguous())
        buf = io.BytesIO()
        torch.jit.save(traced, buf)
    return buf.getvalue()


def load_torchscript(data: bytes) -> nn.Module:
    """A TorchScript file (bytes this process traced) loaded as a deployment loads it: ``torch.jit.load``."""
    with _jit_quiet():
        return torch.jit.load(io.BytesIO(data), map_location="cpu").eval()


JIT_DEPRECATED = re.compile(r".*torch\.jit.* is deprecated.*", re.DOTALL)
_said: list[str] = []  # the deprecation notice, once it is in this process's log


@contextmanager
def _jit_quiet() -> Iterator[None]:
    """torch 2.14 marks torch.jit deprecated, on every trace, save and load; the trace is still the one standalone
    file of eager int8 kernels (module docstring). The notice goes to the log once per process; any other warning
    (a TracerWarning about a trace that may not generalise) is passed on as it came."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.filterwarnings("always", message=JIT_DEPRECATED.pattern, category=FutureWarning)
        yield
    for w in caught:
        if issubclass(w.category, FutureWarning) and JIT_DEPRECATED.match(str(w.message)):
            if not _said:
                _said.append(str(w.message))
                log.info("torch %s deprecates torch.jit; FX int8 still deploys as TorchScript (model_int8.ts): "
                         "torch.export cannot export its packed int8 weights, and a .pt2 load is not pickle-free "
                         "(README: Export)", torch.__version__)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)


def export_torchscript(module: nn.Module, directory: Path, example: torch.Tensor, name: str) -> Exported:
    """A traced TorchScript file ``name`` of ``module`` in ``directory``."""
    try:
        data = torchscript_bytes(module, example)
    except Exception as e:  # noqa: BLE001
        return Exported(skipped={"torchscript": f"{type(e).__name__}: {str(e)[:200]}"})
    (directory / name).write_bytes(data)
    return Exported({name: "torchscript"})


def verify(directory: Path, exported: Exported, inputs: torch.Tensor, expected: torch.Tensor,
           timeout: float = 600) -> dict[str, dict[str, Any]]:
    """Per file: ``ok``, ``max_abs_diff``, ``top1_agreement`` (percent) — or ``error`` — from a fresh process that
    cannot import compressbench."""
    np.save(directory / ".verify_inputs.npy", inputs.detach().cpu().float().numpy())
    np.save(directory / ".verify_expected.npy", expected.detach().cpu().float().numpy())
    spec = {"files": exported.files, "tolerance": {n: exported.tolerance_of(n) for n in exported.files}}
    try:
        proc = subprocess.run([sys.executable, str(VERIFIER), str(directory), json.dumps(spec)],
                              capture_output=True, text=True, timeout=timeout)
    finally:
        for name in (".verify_inputs.npy", ".verify_expected.npy"):
            (directory / name).unlink(missing_ok=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"the export check could not run (exit {proc.returncode}): {proc.stderr[-800:]}")
    return json.loads(lines[-1])
