"""The training environment in every cache key, read without importing what it describes."""
from __future__ import annotations

import subprocess
import sys


def test_torchvision_version_is_read_without_importing_it_and_matches():
    code = ("import sys; from compressbench.pipeline.keys import torchvision_version; v = torchvision_version(); "
            "assert 'torchvision' not in sys.modules, 'imported'; import torchvision; "
            "assert v == torchvision.__version__, (v, torchvision.__version__); print(v)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()
