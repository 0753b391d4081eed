""""Did you mean ...?" for command-line overrides Hydra refuses (``train.amout=3`` → ``train.amount``), and the
pip extra to install when a command needs a Hydra plugin that is missing.

Hydra's own message for an unknown key advises appending it with ``+``: right for a new key, wrong for a typo.
After Hydra has failed, this composes the config again without the value overrides and looks each of their keys
up, suggesting the closest existing key. For a missing plugin Hydra says only "Could not find
'hydra/sweeper/optuna'". It runs only on the error path, so it costs a normal run nothing.
"""
from __future__ import annotations

import difflib
import importlib.util
from collections.abc import Sequence

from omegaconf import DictConfig, OmegaConf

_MISSING = object()


# Hydra plugins that an extra of pyproject.toml installs: (what the command asked for, the overrides that select
# it, the modules it needs, the extra). The hparams_search configs all override hydra/sweeper with optuna.
PLUGINS = (
    ("the Optuna sweeper", ("hparams_search=", "hydra/sweeper=optuna"),
     ("hydra_plugins.hydra_optuna_sweeper", "optuna"), "optuna"),
    ("the joblib launcher", ("hydra/launcher=joblib",), ("hydra_plugins.hydra_joblib_launcher",), "parallel"),
    ("the submitit launcher", ("hydra/launcher=slurm", "hydra/launcher=submitit_"),
     ("hydra_plugins.hydra_submitit_launcher",), "cluster"),
)


def unknown_key_hints(args: Sequence[str]) -> list[str]:
    """One line per Hydra plugin ``args`` need that is not installed (with its pip extra), else one line per
    override in ``args`` whose key is not in the composed config, with the closest key."""
    missing = missing_plugin_hints(args)
    if missing:  # the config cannot compose without the plugin: no key can be looked up
        return missing
    try:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        overrides = OverridesParser.create().parse_overrides([a for a in args if "=" in a and not a.startswith("-")])
    except Exception:  # noqa: BLE001 — a syntax error: Hydra's message already says where
        return []
    groups = _groups()
    kept, checked = [], []
    for o in overrides:
        key = o.key_or_group
        plain = not (o.is_add() or o.is_delete() or o.is_force_add()) and o.package is None
        if plain and key.split(".")[0] not in groups and not key.startswith("hydra."):
            checked.append((key, o.input_line))
        else:
            kept.append(o.input_line)
    if not checked:
        return []
    cfg = _compose(kept)
    if cfg is None:
        return []
    return [hint for key, line in checked if (hint := _hint(cfg, key, line))]


def missing_plugin_hints(args: Sequence[str]) -> list[str]:
    """``compressbench: +hparams_search=... needs the Optuna sweeper, which is not installed here: pip install
    "compressbench[optuna]"`` for each plugin ``args`` select whose modules cannot be imported."""
    hints = []
    for what, selectors, modules, extra in PLUGINS:
        asked = next((a for a in args if a.lstrip("+~").startswith(selectors)), None)
        if asked is not None and not all(_installed(m) for m in modules):
            hints.append(f"compressbench: {asked} needs {what}, which is not installed here: "
                         f'pip install "compressbench[{extra}]"')
    return hints


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # its parent package is missing too (no hydra_plugins at all)
        return False


def _hint(cfg: DictConfig, key: str, line: str) -> str | None:
    parts = key.split(".")
    node: object = cfg
    for depth, part in enumerate(parts):
        children = list(node.keys()) if isinstance(node, DictConfig) else []
        if part in children:
            node = node[part]
            continue
        prefix = ".".join(parts[:depth])
        close = difflib.get_close_matches(part, [str(c) for c in children], n=1, cutoff=0.6)
        where = f"'{prefix}'" if prefix else "the config"
        guess = ".".join([*parts[:depth], close[0], *parts[depth + 1:]]) if close else None
        return (f"compressbench: '{key}' is not a key of {where}"
                + (f"; did you mean {guess}?" if guess else "")
                + f" (to add a new key on purpose: +{line})")
    return None


def _groups() -> set[str]:
    from compressbench.config import conf_dir

    return {p.name for p in conf_dir().iterdir() if p.is_dir()} | {"stage"}


def _compose(overrides: list[str]) -> DictConfig | None:
    try:
        from hydra import compose, initialize_config_dir
        from hydra.core.global_hydra import GlobalHydra

        from compressbench.config import conf_dir

        GlobalHydra.instance().clear()  # the failed run left it initialized
        with initialize_config_dir(config_dir=str(conf_dir()), version_base=None):
            cfg = compose("config", overrides=overrides)
        OmegaConf.set_struct(cfg, False)
        return cfg
    except Exception:  # noqa: BLE001 — the config fails for another reason too; Hydra said which
        return None
