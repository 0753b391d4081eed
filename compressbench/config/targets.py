"""User-supplied callables named by a dotted path (``_target_`` at the edges, STYLE.md): the one place that
imports them and the one place ``hydra.utils.instantiate`` is called."""
from __future__ import annotations

import difflib
import importlib
from collections.abc import Mapping
from typing import Any

from compressbench.config.schema import ConfigError


def locate(path: Any, key: str) -> Any:
    """The object at the dotted ``path`` (``pkg.module.name``, attributes allowed after the module), imported.

    Raises:
        ConfigError: one line naming ``key``, what failed and what to do.
    """
    if not isinstance(path, str) or "." not in path.strip("."):
        raise ConfigError(f"{key}={path!r} is not allowed: the dotted path of a function or class, "
                          f"e.g. {key}=my_pkg.nets.build_net")
    parts = path.split(".")
    module, error = None, None
    for i in range(len(parts) - 1, 0, -1):  # the longest importable prefix is the module
        try:
            module = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError as e:
            error = e
            if e.name is not None and not ".".join(parts[:i]).startswith(e.name):
                break  # the module exists but imports something missing: that is the error to report
            continue
        except Exception as e:  # noqa: BLE001  (the user's module failed while importing)
            raise ConfigError(f"{key}={path}: importing {'.'.join(parts[:i])} failed: {type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else ''}; fix that module") from None
        obj: Any = module
        try:
            for name in parts[i:]:
                obj = getattr(obj, name)
        except AttributeError:
            close = difflib.get_close_matches(parts[i], [n for n in dir(module) if not n.startswith("_")], n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise ConfigError(f"{key}={path}: module {module.__name__} has no '{'.'.join(parts[i:])}'; {hint}check "
                              f"the name (defined in {getattr(module, '__file__', module.__name__)})") from None
        return obj
    missing = getattr(error, "name", None) or parts[0]
    raise ConfigError(f"{key}={path}: cannot import it (no module named '{missing}'); run from the folder that "
                      f"holds it, add that folder to PYTHONPATH, or pip install its package") from None


def instantiate(path: str, key: str, args: Mapping[str, Any]) -> Any:
    """Call the object at ``path`` with ``args`` the Hydra way (nested ``_target_`` nodes built too)."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate as hydra_instantiate

    locate(path, key)  # a clear error first
    try:
        return hydra_instantiate({"_target_": path, **args}, _convert_="all")
    except InstantiationException as e:  # the call's own error, without Hydra's wrapping lines
        if e.__cause__ is not None:
            raise e.__cause__ from None
        raise
