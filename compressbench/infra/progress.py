"""Progress bars: one place that decides whether a bar is drawn and which tqdm draws it.

A bar is drawn when the run asks for it (``runtime.progress``), ``TQDM_DISABLE`` is not set and the output is a
terminal (tqdm's ``disable=None``): a log file or CI output gets no carriage-return noise. In a notebook the
widget bar needs ipywidgets; without it, the plain bar (tqdm.auto would print its escapes line by line).
"""
from __future__ import annotations

import functools
import os
from typing import Any


@functools.cache
def _tqdm() -> type:
    try:
        from IPython import get_ipython  # type: ignore[import-not-found]

        in_notebook = get_ipython() is not None and "IPKernelApp" in get_ipython().config
    except Exception:  # noqa: BLE001 — no IPython, or a shell without a config: not a notebook
        in_notebook = False
    if in_notebook:
        try:
            import ipywidgets  # type: ignore[import-not-found]  # noqa: F401
            from tqdm.notebook import tqdm as notebook_tqdm

            return notebook_tqdm
        except ImportError:
            pass
    from tqdm.std import tqdm as std_tqdm

    return std_tqdm


def disabled(enabled: bool = True) -> bool | None:
    """tqdm's ``disable``: True (no bar) when not ``enabled`` or under ``TQDM_DISABLE``; None = only on a TTY."""
    if not enabled or os.environ.get("TQDM_DISABLE", "").strip().lower() not in ("", "0", "false", "no"):
        return True
    return None


def bar(iterable: Any = None, enabled: bool = True, **kwargs: Any) -> Any:
    """A tqdm bar over ``iterable`` (or ``total=``) that follows the rules above."""
    kwargs.setdefault("dynamic_ncols", True)
    return _tqdm()(iterable, disable=disabled(enabled), **kwargs)
