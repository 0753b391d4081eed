"""Model size, every flavour side by side (DESIGN.md §6), from what the artifact says it ships."""
from __future__ import annotations

from typing import Any

from compressbench.runtimes import Deployable
from compressbench.runtimes.base import gzip_size


def size_metrics(artifact: Deployable) -> dict[str, Any]:
    params, nonzero = artifact.param_counts()
    data = artifact.artifact_bytes()
    return {
        "params": params,
        "nonzero_params": nonzero,
        "sparsity": 1.0 - nonzero / params if params else 0.0,
        "dense_bytes": params * 4,
        "size_bytes": len(data),
        "gzip_bytes": gzip_size(data),
    }
