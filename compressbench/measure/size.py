"""Model size, every flavour side by side (DESIGN.md §6), from what the artifact says it ships.

``size_bytes`` is the artifact as stored (``size_file`` names it: a state_dict, an ONNX file, ...);
``deployable_bytes`` is the file a user runs without compressbench (``deployable_file``): the same bytes for
most runtimes, the TorchScript file for FX int8, whose int8 state_dict needs our recipe to rebuild the module.
``compression_ratio`` compares deployable files. ``artifact_sha256`` identifies the bytes, so rows that measured
one artifact (a quantize row and the export row after it, or a stage reused by a sweep's jobs) can be found.
"""
from __future__ import annotations

import hashlib
from typing import Any

from compressbench.runtimes import Deployable
from compressbench.runtimes.base import gzip_size


def size_metrics(artifact: Deployable) -> dict[str, Any]:
    params, nonzero = artifact.param_counts()
    data = artifact.artifact_bytes()
    name, deployable = artifact.deployable_file() or (artifact.size_file(), data)
    return {
        "params": params,
        "nonzero_params": nonzero,
        "sparsity": 1.0 - nonzero / params if params else 0.0,
        "dense_bytes": params * 4,
        "size_bytes": len(data),
        "gzip_bytes": gzip_size(data),
        "size_file": artifact.size_file(),
        "deployable_bytes": len(deployable),
        "deployable_file": name,
        "artifact_sha256": hashlib.sha256(data).hexdigest()[:16],
    }


def compression_ratio(base: dict[str, Any], metrics: dict[str, Any]) -> float:
    """The reference's deployable file over this one's (rows measured before ``deployable_bytes``: size_bytes)."""
    def runnable(m: dict[str, Any]) -> float:
        return m.get("deployable_bytes") or m["size_bytes"]

    return runnable(base) / runnable(metrics)
