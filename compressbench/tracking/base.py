"""The TRACKERS registry: ``conf/logger/<name>.yaml`` = ``logger=<name>`` = ``TRACKERS[name]``."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from compressbench.config import BadValue, ConfigError
from compressbench.infra.registry import Registry
from compressbench.tracking.record import RunRecord


@dataclass(frozen=True)
class Tracker:
    """How one tracker is configured and what it does with a finished run.

    Attributes:
        options: the dataclass of its ``logger`` node (``name`` included); unknown keys are errors.
        log: logs a ``RunRecord`` with the options; returns where it went (for the log line).
        available: whether its optional packages are installed.
        install_hint: the pip line that installs them.
    """

    options: type
    log: Callable[[RunRecord, Any], str]
    available: Callable[[], bool] = lambda: True
    install_hint: str = ""

    def parse(self, node: Any) -> Any:
        """The typed options of a ``logger`` node; a wrong key or value raises ConfigError naming it."""
        if isinstance(node, DictConfig):
            node = OmegaConf.to_container(node, resolve=True)
        try:
            return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(self.options), node or {}))
        except BadValue as e:
            raise e.under("logger") from None
        except OmegaConfBaseException as e:
            fields = ", ".join(f.name for f in dataclasses.fields(self.options))
            first = str(getattr(e, "msg", e)).splitlines()[0]  # OmegaConf appends full_key/object_type lines
            raise ConfigError(f"logger: {first} (logger={node.get('name')} "
                              f"takes: {fields}; see conf/logger/{node.get('name')}.yaml)") from None


TRACKERS: Registry[Tracker] = Registry("logger")


@dataclass
class NoneOptions:
    """``logger=none``: nothing is logged (the run dir has everything)."""

    name: str = "none"


TRACKERS.register("none")(Tracker(NoneOptions, lambda record, options: ""))
