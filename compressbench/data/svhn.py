"""SVHN (32x32 RGB house-number digits, 73k train / 26k test) via torchvision's reader of the .mat files."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from compressbench.data import DATASETS
from compressbench.data.fetch import download_guard, require_files
from compressbench.data.fingerprint import file_checksums, files_digest
from compressbench.data.split import DataBundle, Split, assemble, read_options

# No flip: digits are not mirror symmetric. The 531k "extra" images are left out (the usual small setting).
DEFAULTS: dict[str, Any] = {"download": True, "augment": {"crop_padding": 4, "flip": False}}
URL = "http://ufldl.stanford.edu/housenumbers/"


@DATASETS.register("svhn")
def load_svhn(cfg: Mapping[str, Any], data_dir: Path, cache_dir: Path) -> DataBundle:
    """Reads ``data_dir/svhn/{train,test}_32x32.mat``, downloading them when allowed."""
    from torchvision.datasets import SVHN

    opts = read_options(cfg, DEFAULTS, "svhn")
    where = data_dir / "svhn"
    files = [where / SVHN.split_list[s][1] for s in ("train", "test")]
    require_files("svhn", files, where, opts["download"])
    with download_guard("svhn", data_dir, opts["download"], where, URL):
        # Each split is its own file (and download), so both constructors get `download`.
        train = SVHN(str(where), split="train", download=opts["download"])
        test = SVHN(str(where), split="test", download=opts["download"])

    def split(ds: SVHN) -> Split:
        # torchvision already transposed to NCHW and mapped label 10 (SVHN's "0") to 0.
        return Split(torch.from_numpy(np.ascontiguousarray(ds.data)), torch.from_numpy(ds.labels).long())

    digest = files_digest(file_checksums(files, cache_dir))
    return assemble("svhn", split(train), split(test), [str(d) for d in range(10)], opts, source_digest=digest)
