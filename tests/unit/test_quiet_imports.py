"""Warnings we understand are silenced where they are raised, so they never land in the middle of a bar."""
from __future__ import annotations

import subprocess
import sys

import pytest


def test_importing_the_torchao_adapter_prints_nothing():
    pytest.importorskip("torchao")
    out = subprocess.run([sys.executable, "-c", "import compressbench.adapters.torchao"], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0 and "deprecated" not in out.stderr and "KernelPreference" not in out.stderr, out.stderr
