"""A command that needs a Hydra plugin which is not installed gets one line naming the pip extra (Hydra itself says
only "Could not find 'hydra/sweeper/optuna'"). The import failure is simulated; nothing is uninstalled."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from compressbench.config import suggest

ROOT = Path(__file__).resolve().parents[2]


def without(monkeypatch: pytest.MonkeyPatch, *missing: str) -> None:
    """find_spec as on a machine where ``missing`` were never installed."""
    real = importlib.util.find_spec

    def find_spec(name: str, *args, **kwargs):
        if any(name == m or name.startswith(f"{m}.") for m in missing):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(suggest.importlib.util, "find_spec", find_spec)


@pytest.mark.parametrize("missing", ["hydra_plugins.hydra_optuna_sweeper", "optuna", "hydra_plugins"])
def test_an_optuna_search_without_the_extra_names_the_pip_extra(monkeypatch: pytest.MonkeyPatch, missing: str):
    without(monkeypatch, missing)
    hints = suggest.unknown_key_hints(["+hparams_search=prune_quant_optuna", "hydra.sweeper.n_trials=3"])
    assert hints == ["compressbench: +hparams_search=prune_quant_optuna needs the Optuna sweeper, which is not "
                     'installed here: pip install "compressbench[optuna]"']
    assert suggest.missing_plugin_hints(["hydra/sweeper=optuna"])[0].endswith('"compressbench[optuna]"')


def test_other_plugins_name_their_extra_and_nothing_is_said_when_installed(monkeypatch: pytest.MonkeyPatch):
    args = {"optuna": "+hparams_search=prune_quant_optuna", "parallel": "hydra/launcher=joblib",
            "cluster": "hydra/launcher=slurm"}
    assert suggest.missing_plugin_hints(["prune.amount=0.5"]) == []
    for _, _, modules, extra in suggest.PLUGINS:
        if all(importlib.util.find_spec(m) for m in modules):  # installed here: no hint
            assert suggest.missing_plugin_hints([args[extra]]) == []
    without(monkeypatch, "hydra_plugins")
    hints = suggest.missing_plugin_hints(list(args.values()))
    assert [h.split("pip install ")[1] for h in hints] == [f'"compressbench[{e}]"' for e in args]


def test_each_extra_named_is_in_pyproject_and_installs_the_plugin():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for _, _, modules, extra in suggest.PLUGINS:
        plugin = modules[0].split(".")[1].replace("_", "-")  # hydra_plugins.hydra_optuna_sweeper → hydra-optuna-...
        assert any(dep.startswith(plugin) for dep in extras[extra]), (extra, extras[extra])
