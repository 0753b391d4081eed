"""The RUNTIMES registry: every way a model can be deployed, each a ``Deployable`` (``runtimes.base``).

Registry key = the name used in ``quantize.fp32_routes`` and in a cache entry; ``runtime`` (the results column)
is the finer label an instance carries (``onnxruntime-int8``). Adding a runtime is two files: the Deployable
here and the adapter module that imports its library.
"""
from __future__ import annotations

import importlib
import pkgutil

from compressbench.runtimes.base import RUNTIMES, Arch, Deployable, NotDeployable, register_runtime
from compressbench.runtimes.eager import Eager, as_module

# Every module of this package registers its runtimes on import: a new runtime is a new file, no list to keep.
for _info in pkgutil.iter_modules(__path__):
    if _info.name not in ("base", "verify_exported"):  # the protocol; a script for a process without us
        importlib.import_module(f"{__name__}.{_info.name}")


def fp32_routes(installed: bool = False) -> list[str]:
    """Runtimes that can run an fp32 model (they define ``from_fp32``): the ``quantize.fp32_routes`` choices;
    ``installed``: only those whose optional packages are installed here (the default of that option)."""
    return [name for name in RUNTIMES.names() if callable(getattr(RUNTIMES.get(name), "from_fp32", None))
            and (not installed or RUNTIMES.get(name).available())]


__all__ = ["fp32_routes", "RUNTIMES", "Arch", "Deployable", "Eager", "NotDeployable", "as_module",
           "register_runtime"]
