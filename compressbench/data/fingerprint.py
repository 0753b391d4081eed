"""Fingerprints of the data a DataBundle holds: what the stage cache keys on, so changed data recomputes.

A fingerprint hashes where the data came from plus how it was split and shaped:
- image folders: the relative path, label, size and mtime of every file actually decoded (no file is read;
  a re-extracted archive keeps its mtimes, so it keeps its fingerprint);
- torchvision formats: the sha256 of each data file, remembered in ``checksums.json`` next to the decode cache
  under (path, size, mtime), so a 170 MB archive is hashed once per version of the file, not every run;
- arrays made in memory (digits, synthetic): their bytes;
then the split indices and the options that shape the tensors (image size, resize method).
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from compressbench.infra.atomic import atomic_write_text
from compressbench.infra.hashing import file_sha256
from compressbench.infra.locks import file_lock

FINGERPRINT_VERSION = 1  # bump when what goes into a fingerprint changes
CHECKSUMS = "checksums.json"


def listing_digest(files: Iterable[tuple[str, int, int, int]], salt: str = "files") -> str:
    """sha256 of ``salt`` and the ``(relative path, label, size, mtime_ns)`` rows, in the given order."""
    h = hashlib.sha256(f"{salt}\n".encode())
    for rel, label, size, mtime_ns in files:
        # The name as the bytes it is on disk: a name that is not UTF-8 (a shared drive's Latin-1 files) holds
        # surrogate escapes that .encode() refuses; for UTF-8 names fsencode gives the very same bytes.
        h.update(os.fsencode(rel) + f"\0{label}\0{size}\0{mtime_ns}\n".encode())
    return h.hexdigest()


def tensor_digest(*tensors: torch.Tensor) -> str:
    """sha256 of the tensors' dtypes, shapes and bytes."""
    h = hashlib.sha256(b"tensors\n")
    for t in tensors:
        t = t.detach().cpu().contiguous()
        h.update(f"{t.dtype}{tuple(t.shape)}\n".encode())
        h.update(memoryview(t.view(torch.uint8).numpy() if t.numel() else b""))
    return h.hexdigest()


def file_checksums(paths: Sequence[Path], cache_dir: Path,
                   on_new: Callable[[Path], None] | None = None) -> dict[str, str]:
    """{file name: sha256} of ``paths``; hashes only files whose (path, size, mtime) ``cache_dir`` has not seen.

    ``on_new(path)`` runs before a file is hashed for the first time (e.g. torchvision's md5 check), so a
    corrupt download is caught once, not on every run. The record is a plain JSON file; losing it only costs
    hashing again.
    """
    record_path = cache_dir / CHECKSUMS
    record = _read_json(record_path)
    out, changed = {}, False
    for path in paths:
        st = os.stat(path)
        where = str(Path(path).resolve())
        seen = record.get(where)
        if not (isinstance(seen, dict) and seen.get("size") == st.st_size and seen.get("mtime_ns") == st.st_mtime_ns
                and isinstance(seen.get("sha256"), str)):
            if on_new is not None:
                on_new(path)
            seen = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": file_sha256(path)}
            record[where], changed = seen, True
        out[Path(path).name] = seen["sha256"]
    if changed:
        try:
            with file_lock(cache_dir / (CHECKSUMS + ".lock"), "the data checksum record"):
                merged = {**_read_json(record_path), **record}  # keep what other jobs added meanwhile
                atomic_write_text(record_path, json.dumps(merged, indent=0, sort_keys=True))
        except OSError:  # a read-only cache dir: the checksums are recomputed next time, nothing is wrong
            pass
    return out


def files_digest(checksums: Mapping[str, str]) -> str:
    return hashlib.sha256(json.dumps(dict(checksums), sort_keys=True).encode()).hexdigest()


def bundle_fingerprint(name: str, source_digest: str, class_names: Sequence[str],
                       indices: Mapping[str, np.ndarray | None], shape: Mapping[str, Any]) -> str:
    """The DataBundle fingerprint: source, class names, split indices (None = an official split), shape options."""
    h = hashlib.sha256(json.dumps({"version": FINGERPRINT_VERSION, "dataset": name, "source": source_digest,
                                   "classes": list(class_names), "shape": dict(shape)},
                                  sort_keys=True, default=str).encode())
    for split in sorted(indices):
        idx = indices[split]
        h.update(f"\n{split}:".encode())
        h.update(b"official" if idx is None else np.ascontiguousarray(idx, dtype=np.int64).tobytes())
    return h.hexdigest()


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
