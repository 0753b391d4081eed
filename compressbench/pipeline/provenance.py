"""Where a row came from: the run's id over its whole config, the commit, the machine."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
from functools import cache
from pathlib import Path

from omegaconf import DictConfig

from compressbench.config import to_dict


def run_id_of(cfg: DictConfig) -> str:
    """One job's identity: its whole resolved config but paths and progress bars. A rerun of the same command
    has the same id (the aggregator keeps its newest rows); a sweep over any option gives distinct ids."""
    node = to_dict(cfg)
    node.pop("paths", None)
    node.get("runtime", {}).pop("progress", None)
    return hashlib.sha256(json.dumps(node, sort_keys=True, default=str).encode()).hexdigest()[:12]


@cache
def git_sha() -> str:
    """Short commit of the compressbench checkout (``+dirty`` with local changes); empty when installed."""
    root = Path(__file__).resolve().parents[2]  # compressbench/pipeline/provenance.py -> repo
    if not (root / ".git").exists():
        return ""
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    return sha + ("+dirty" if sha and dirty else "")


@cache
def machine() -> str:
    """CPU model and core count, e.g. 'Intel Xeon ... (2 cores)'; the GPU is named in the device column."""
    name = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        import platform

        name = platform.processor() or platform.machine()
    return f"{name} ({os.cpu_count()} cores)"

