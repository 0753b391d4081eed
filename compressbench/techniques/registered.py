"""Imported for its effect: every technique module, so their registrations in the layers below are in place.

Some technique modules extend a lower layer when imported — weight sharing registers its ``ModuleState`` (how a
clustered model is saved and rebuilt), the sparse encoding its results-row fields — and a run needs them even
when no stage function runs (every stage loaded from the cache). Stage modules import their techniques only inside
the stage functions (so configs are checked before torch is imported); the pipeline imports this module instead,
so no list of such modules is kept anywhere.
"""
from __future__ import annotations

import importlib
import pkgutil

import compressbench.techniques as _techniques

for _info in pkgutil.walk_packages(_techniques.__path__, prefix=f"{_techniques.__name__}."):
    if _info.name != __name__:
        importlib.import_module(_info.name)
