"""One version: the package's (in every cache key) and the one pip installs."""
import re
from pathlib import Path

import compressbench
from compressbench.infra.version import __version__


def test_the_package_says_the_version_pyproject_does():
    text = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert compressbench.__version__ == __version__ == re.search(r'^version = "([^"]+)"', text, re.M).group(1)
