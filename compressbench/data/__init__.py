"""Datasets held in memory as uint8 tensors, looked up by name in DATASETS (= conf/dataset/<name>.yaml).

``load_dataset(cfg.dataset, data_dir, cache_dir)`` returns a DataBundle; ``tensors.TensorLoader`` batches,
normalises and augments its splits on the training device. A loader is ``fn(cfg, data_dir, data_cache)``:
``data_cache`` is where it may keep what it derives from the data (decoded images, file checksums), never
inside the user's data folders. ``check_dataset`` answers, before any loading, what the options and the folders
alone can: each loader module registers its check in CHECKS under the same name.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

# Imported for their registrations into data.registry (a leaf: the loaders never import this package).
from compressbench.data import cifar, digits, given, image_folder, mnist, svhn, synthetic  # noqa: F401
from compressbench.data.registry import CHECKS, DATASETS
from compressbench.data.split import Augment, DataBundle, Split


def check_dataset(cfg: Mapping[str, Any], data_dir: str | Path, *, files: bool = True) -> None:
    """Check the ``dataset`` node before any work: its options (ValueError naming the key), and with ``files``
    whether its files are there or may be downloaded (FileNotFoundError saying where to put them). Quick: it
    lists folders, it reads no image."""
    name = str(cfg.get("name"))
    DATASETS.get(name)
    if name in CHECKS:
        CHECKS.get(name)({k: v for k, v in cfg.items() if k != "limit"}, Path(data_dir), files)


def load_dataset(cfg: Mapping[str, Any], data_dir: str | Path, cache_dir: str | Path | None = None) -> DataBundle:
    """Load the dataset that the ``dataset`` config node names (key ``name``) from/into ``data_dir``.

    Derived files (decoded images, checksums) go to ``<cache_dir>/data`` (``paths.cache_dir``), or to
    ``<data_dir>/.compressbench_cache`` when no cache_dir is given.
    """
    name = cfg.get("name")
    if not name:
        raise ValueError(f"the dataset config needs a 'name' (one of {', '.join(DATASETS.names())}), "
                         "e.g. dataset=digits on the command line")
    limit = cfg.get("limit")
    if limit is not None:  # +debug=smoke: a few images per split, taken after the real split is made
        cfg = {k: v for k, v in cfg.items() if k != "limit"}
    bundle = DATASETS.get(str(name))(cfg, Path(data_dir), data_cache_dir(data_dir, cache_dir))
    return limited(bundle, int(limit)) if limit is not None else bundle


def limited(bundle: DataBundle, n: int) -> DataBundle:
    """``bundle`` with at most ``n`` images per split, spread evenly over each split; the fingerprint (and so
    every stage key) says so."""
    import dataclasses
    import hashlib

    import torch

    if n < 1:
        raise ValueError(f"dataset.limit={n} is not allowed: >= 1 images per split (or null for all)")

    def cut(split: Split) -> Split:
        if len(split) <= n:
            return split
        index = torch.linspace(0, len(split) - 1, n).round().long()
        return Split(split.images[index].clone(), split.labels[index].clone())

    parts = {s: cut(getattr(bundle, s)) for s in ("train", "val", "test")}
    info = {**bundle.split_info, "limit": n, "sizes": {s: len(p) for s, p in parts.items()}}
    fingerprint = hashlib.sha256(f"{bundle.fingerprint}|limit={n}".encode()).hexdigest()
    return dataclasses.replace(bundle, **parts, split_info=info, fingerprint=fingerprint)


def data_cache_dir(data_dir: str | Path, cache_dir: str | Path | None = None) -> Path:
    """Where loaders keep what they derive from the data (created on first write)."""
    return Path(cache_dir) / "data" if cache_dir is not None else Path(data_dir) / ".compressbench_cache"


__all__ = ["CHECKS", "DATASETS", "Augment", "DataBundle", "Split", "check_dataset", "load_dataset"]
