"""Content-addressed stage cache (DESIGN.md §5): what makes sweeps cheap.

The key of a stage hashes the key of the stage before it, the stage's resolved config, the model and dataset
config, the seed and the compressbench version, so two runs that share a prefix of their chain share its
entries. An entry is ``<root>/<key[:2]>/<key>/`` holding ``model.pt`` (the whole model, pickled), ``meta.json``
(the stage's recorded fields, its history and the sha256 of ``model.pt``) and ``DONE``, written last. An entry
without ``DONE`` is half-written and recomputed; one whose checksum does not match is reported and recomputed,
never loaded. A file lock per key makes parallel jobs that need the same stage compute it once.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from compressbench import __version__
from compressbench.atomic import atomic_torch_save, atomic_write_text
from compressbench.locks import file_lock

# Bump when a change makes earlier cache entries wrong (a fixed training bug, a new default), so they are not hit.
CACHE_VERSION = 2


def stage_key(previous: str, **parts: Any) -> str:
    """sha256 over the previous key and the JSON of ``parts`` (sorted, so dict order never matters)."""
    blob = json.dumps({"previous": previous, "version": __version__, "cache_version": CACHE_VERSION, **parts},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# Training checkpoints duplicate the cached model; everything else a stage wrote (reports, exported files) is
# kept with the entry and restored into the stage folder of a run that hits it.
SKIP_FILES = ("best.pt", "last.pt", "resume*.pt", "error.txt")


@dataclass
class Hit:
    model: nn.Module
    info: dict[str, Any]
    history: list[dict[str, Any]]
    files: Path | None = None

    def restore_files(self, stage_dir: Path) -> None:
        if self.files is not None and self.files.is_dir():
            shutil.copytree(self.files, stage_dir, dirs_exist_ok=True)


class Entry:
    """One key's directory. Use inside ``StageCache.hold`` so no other process writes it meanwhile."""

    def __init__(self, path: Path | None, key: str) -> None:
        self.path, self.key = path, key

    def load(self, device: torch.device) -> Hit | None:
        """The cached result, or None when absent, half-written or corrupt (corruption is reported)."""
        if self.path is None or not (self.path / "DONE").is_file():
            return None
        try:
            meta = json.loads((self.path / "meta.json").read_text())
            if file_sha256(self.path / "model.pt") != meta["sha256"]:
                raise ValueError("model.pt does not match the checksum in meta.json (truncated or edited)")
            # Our own entries, verified by checksum, are the one place full unpickling is allowed.
            model = torch.load(self.path / "model.pt", map_location=device, weights_only=False)
        except Exception as e:  # noqa: BLE001 — any damage means: recompute
            print(f"[compressbench] cache entry {self.key[:12]} is damaged ({e}); recomputing it", flush=True)
            (self.path / "DONE").unlink(missing_ok=True)
            return None
        return Hit(model, meta.get("info", {}), meta.get("history", []), self.path / "files")

    def save(self, model: nn.Module, info: dict[str, Any], history: list[dict[str, Any]],
             files: Path | None = None) -> None:
        """Store the stage's output; ``files`` (its stage folder) is copied in, minus training checkpoints."""
        if self.path is None:
            return
        (self.path / "DONE").unlink(missing_ok=True)
        atomic_torch_save(model, self.path / "model.pt")
        if files is not None and files.is_dir():
            shutil.rmtree(self.path / "files", ignore_errors=True)
            shutil.copytree(files, self.path / "files", ignore=shutil.ignore_patterns(*SKIP_FILES, ".tmp-*"))
        meta = {"key": self.key, "sha256": file_sha256(self.path / "model.pt"), "info": info,
                "history": history,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "torch_version": torch.__version__,
                "compressbench_version": __version__}
        atomic_write_text(self.path / "meta.json", json.dumps(meta, indent=1, default=str))
        atomic_write_text(self.path / "DONE", self.key + "\n")


class StageCache:
    """Entries under ``root``; ``root=None`` disables caching (every stage computes, nothing is stored)."""

    def __init__(self, root: str | Path | None) -> None:
        self.root = Path(root) if root is not None else None

    def path_of(self, key: str) -> Path | None:
        return self.root / key[:2] / key if self.root is not None else None

    @contextmanager
    def hold(self, key: str) -> Iterator[Entry]:
        """Lock ``key`` for the body: a second process needing the same stage waits, then loads it."""
        if self.root is None:
            yield Entry(None, key)
            return
        with file_lock(self.root / "locks" / f"{key}.lock", what=f"stage cache entry {key[:12]}"):
            yield Entry(self.path_of(key), key)
