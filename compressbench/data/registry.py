"""The dataset registries, a leaf module: each loader module registers itself here, and ``data`` (the package)
imports the loaders after it, so no loader imports the package that imports it."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from compressbench.data.split import DataBundle
from compressbench.infra.registry import Registry

DatasetFn = Callable[[Mapping[str, Any], Path, Path], DataBundle]
CheckFn = Callable[[Mapping[str, Any], Path, bool], None]  # (dataset node, data_dir, check files too)

DATASETS: Registry[DatasetFn] = Registry("dataset")
CHECKS: Registry[CheckFn] = Registry("dataset check")
