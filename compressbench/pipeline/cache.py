"""Content-addressed stage cache (DESIGN.md §5): what makes sweeps cheap, and what it trusts.

The key of a stage hashes the key of the stage before it, the stage's resolved config, the model and dataset
config, the data's fingerprint, the seed and the compressbench version, so two runs that share a prefix of their
chain share its entries. An entry ``<root>/<key[:2]>/<key>/`` holds

- ``artifact/``: the stage's deployable, as written by its runtime's ``save`` (architecture + tensors, ONNX);
- ``files/``: what the stage wrote beside it (reports, encoded files), restored into a run that hits it;
- ``entry.json``: its own key, the runtime and its metadata, the recorded fields, the history, the sha256
  of every file above, and ``record_sha256``: the sha256 of all the rest of entry.json;
- ``DONE``: the key again, written last.

An entry is used only when ``DONE``, ``entry.json`` and its folder name agree on the key, the record matches its
checksum (entries written before there was one, without ``record_sha256``, verify their files only), every listed
file matches its checksum and a ``manifest.json`` among the stage's files (an export's) matches the files it
lists; anything else (half-written, edited, copied under another key, a flipped byte or digit, a folder replaced
by a file) is reported and recomputed. A hit's row says what was checked (``cache_verified``). Nothing in an entry
is unpickled: tensors are read with ``weights_only=True``. So whoever can write a shared cache dir can make us
report wrong numbers (by forging consistent entries, checksums included), never run code: a verdict such as
``export_verified`` on a hit is the one of the run that made the entry. A file lock per key makes parallel jobs
that need the same stage compute it once.
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from compressbench.infra.atomic import atomic_write_bytes, atomic_write_text
from compressbench.infra.hashing import file_sha256
from compressbench.infra.locks import file_lock
from compressbench.infra.version import __version__
from compressbench.runtimes import RUNTIMES, Deployable
from compressbench.stages.export import MANIFEST  # a stage file listing the sha256 of the others

log = logging.getLogger(__name__)

# Bump when a change makes earlier cache entries wrong (a fixed training bug, a new default), so they are not hit.
CACHE_VERSION = 3
FORMAT = "compressbench-entry/1"


def stage_key(previous: str, **parts: Any) -> str:
    """sha256 over the previous key and the JSON of ``parts`` (sorted, so dict order never matters)."""
    blob = json.dumps({"previous": previous, "version": __version__, "cache_version": CACHE_VERSION, **parts},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()




class DamagedEntry(ValueError):
    """A cache entry that does not verify; the message says what is wrong with it."""


@dataclass
class Hit:
    artifact: Deployable
    info: dict[str, Any]
    history: list[dict[str, Any]]
    files: dict[str, bytes] = field(default_factory=dict)  # the stage's files, verified
    checked: str = ""  # what was verified, for the row (``cache_verified``)


def record_sha256(meta: Mapping[str, Any]) -> str:
    """sha256 of entry.json's content less ``record_sha256`` itself, as JSON reads it back (sorted keys)."""
    rest = {k: v for k, v in meta.items() if k != "record_sha256"}
    return hashlib.sha256(json.dumps(rest, sort_keys=True).encode()).hexdigest()


def _clear(path: Path) -> None:
    """Remove whatever is at ``path``: a folder, a file, or a link (never what a link points to)."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def _listing(root: Path) -> dict[str, str]:
    """relative path → sha256 of every file under ``root`` (none when it does not exist)."""
    if not root.is_dir():
        return {}
    return {p.relative_to(root).as_posix(): file_sha256(p) for p in sorted(root.rglob("*")) if p.is_file()}


class Entry:
    """One key's directory. Use inside ``StageCache.hold`` so no other process writes it meanwhile."""

    def __init__(self, path: Path | None, key: str) -> None:
        self.path, self.key = path, key

    def load(self, device: torch.device) -> Hit | None:
        """The cached result, or None when absent or half-written; a damaged entry is reported and dropped."""
        if self.path is None or not (self.path / "DONE").is_file():
            return None
        try:
            return self._verified(device)
        except Exception as e:  # noqa: BLE001 — any damage means: recompute
            log.warning("cache entry %s is rejected (%s: %s); recomputing it", self.key[:12], type(e).__name__, e)
            self.discard()
            return None

    def _verified(self, device: torch.device) -> Hit:
        assert self.path is not None
        if self.path.name != self.key:
            raise DamagedEntry(f"folder {self.path.name[:12]} does not hold key {self.key[:12]}")
        done = (self.path / "DONE").read_text().strip()
        meta = json.loads((self.path / "entry.json").read_text())
        if meta.get("format") != FORMAT:
            raise DamagedEntry(f"format {meta.get('format')!r}, expected {FORMAT}")
        if not (done == meta.get("key") == self.key):
            raise DamagedEntry(f"made for key {str(meta.get('key'))[:12]} (DONE says {done[:12]}), not "
                               f"{self.key[:12]}: copied or edited")
        checked = ["record"] if "record_sha256" in meta else []  # entries of before 2026-12 have none
        if checked and meta["record_sha256"] != record_sha256(meta):
            raise DamagedEntry("entry.json was edited: its recorded fields do not match record_sha256")
        listed: dict[str, str] = meta["sha256"]
        present = self._checksums()
        if present != listed:
            bad = sorted(set(present) ^ set(listed) | {k for k in set(present) & set(listed)
                                                       if present[k] != listed[k]})
            raise DamagedEntry(f"files do not match their checksums: {', '.join(bad[:5])}")
        checked.append(f"sha256 of {len(listed)} file(s)")
        files = {k[len("files/"):]: (self.path / k).read_bytes() for k in listed if k.startswith("files/")}
        if MANIFEST in files:
            _check_manifest(files)
            checked.append(MANIFEST)
        artifact = RUNTIMES.get(meta["kind"]).load(self.path / "artifact", meta["artifact"], device)
        return Hit(artifact, meta.get("info", {}), meta.get("history", []), files, ", ".join(checked))

    def save(self, artifact: Deployable, info: Mapping[str, Any], history: list[dict[str, Any]],
             files: Mapping[str, bytes], stage: str = "") -> None:
        """Store the stage's output: its deployable, recorded fields, history and files; ``stage`` (the kind
        that made it) is for whoever browses the cache, never read back."""
        if self.path is None:
            return
        if self.path.is_symlink() or (self.path.exists() and not self.path.is_dir()):
            _clear(self.path)  # a damaged entry is always recomputed: nothing in the way may stay
        self.discard()
        for sub in ("artifact", "files", "entry.json"):
            _clear(self.path / sub)  # a file where a folder was, or a link out: removed, not written through
        (self.path / "artifact").mkdir(parents=True)
        meta_artifact = artifact.save(self.path / "artifact")
        for name, data in files.items():
            atomic_write_bytes(self.path / "files" / name, data)
        sha = self._checksums()
        meta = {"format": FORMAT, "key": self.key, "stage": stage, "kind": artifact.kind, "runtime": artifact.runtime,
                "artifact": meta_artifact, "sha256": sha, "info": dict(info), "history": history,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "torch_version": torch.__version__,
                "compressbench_version": __version__}
        meta = json.loads(json.dumps(meta, default=str))  # the checksum covers what a reader will get back
        meta["record_sha256"] = record_sha256(meta)
        atomic_write_text(self.path / "entry.json", json.dumps(meta, indent=1))
        atomic_write_text(self.path / "DONE", self.key + "\n")

    def _checksums(self) -> dict[str, str]:
        assert self.path is not None
        return {f"{sub}/{k}": v for sub in ("artifact", "files") for k, v in _listing(self.path / sub).items()}

    def discard(self) -> None:
        if self.path is not None and self.path.is_dir():
            _clear(self.path / "DONE")

    @property
    def resume_file(self) -> Path | None:
        """Where an interrupted training stage keeps its state (read back weights-only)."""
        return self.path / "resume.pt" if self.path is not None else None


def _check_manifest(files: Mapping[str, bytes]) -> None:
    """Every file a stage's manifest lists is there with its sha256 and size, and nothing it does not list."""
    try:
        listed = json.loads(files[MANIFEST])["files"]
        expected = {name: (entry["sha256"], entry["bytes"]) for name, entry in listed.items() if name != MANIFEST}
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise DamagedEntry(f"{MANIFEST} is unreadable ({type(e).__name__}: {e})") from None
    present = {name: (hashlib.sha256(data).hexdigest(), len(data)) for name, data in files.items() if name != MANIFEST}
    if present != expected:
        bad = sorted(n for n in set(present) | set(expected) if present.get(n) != expected.get(n))
        raise DamagedEntry(f"files do not match {MANIFEST}: {', '.join(bad[:5])}")


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

    def lookup(self, key: str, device: torch.device) -> Deployable | None:
        """The verified artifact of ``key``, or None (no entry, caching off, or a rejected entry)."""
        with self.hold(key) as entry:
            hit = entry.load(device)
        return hit.artifact if hit is not None else None
