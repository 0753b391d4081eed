"""The wheel ships every subpackage and the configs (pyproject lists packages by hand; see its comment)."""
from __future__ import annotations

from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[2]


def test_every_subpackage_is_listed_in_pyproject():
    if not (ROOT / "pyproject.toml").is_file():
        pytest.skip("not running from a source checkout")
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "compressbench").rglob("__init__.py")}
    assert found <= listed, f"add to [tool.setuptools] packages: {sorted(found - listed)}"


def test_configs_are_found_by_the_installed_package():
    from compressbench.config import conf_dir

    conf = conf_dir()
    assert (conf / "config.yaml").is_file()
    assert {p.stem for p in (conf / "model").glob("*.yaml")} >= {"lenet5", "resnet20"}
