"""The RUNTIMES registry: every way a model can be deployed, each a ``Deployable`` (``runtimes.base``).

Registry key = the name used in ``quantize.fp32_routes`` and in a cache entry; ``runtime`` (the results column)
is the finer label an instance carries (``onnxruntime-int8``). Adding a runtime is two files: the Deployable
here and the adapter module that imports its library.
"""
from __future__ import annotations

import importlib
import pkgutil

from compressbench.runtimes.base import (
    RUNTIMES,
    Arch,
    Deployable,
    Fp32Route,
    Int8Calibrating,
    NotDeployable,
    fp32_route,
    int8_calibrating,
    register_runtime,
)
from compressbench.runtimes.eager import Eager, as_module

# Every module of this package registers its runtimes on import: a new runtime is a new file, no list to keep.
for _info in pkgutil.iter_modules(__path__):
    if _info.name not in ("base", "verify_exported"):  # the protocol; a script for a process without us
        importlib.import_module(f"{__name__}.{_info.name}")


def fp32_routes(installed: bool = False) -> list[str]:
    """Runtimes that can run an fp32 model (``Fp32Route``): the ``quantize.fp32_routes`` choices; ``installed``:
    only those whose optional packages are installed here (the default of that option)."""
    return [name for name in RUNTIMES.names() if isinstance(RUNTIMES.get(name), Fp32Route)
            and (not installed or RUNTIMES.get(name).available())]


__all__ = ["fp32_routes", "RUNTIMES", "Arch", "Deployable", "Eager", "Fp32Route", "Int8Calibrating",
           "NotDeployable", "as_module", "fp32_route", "int8_calibrating", "register_runtime"]
