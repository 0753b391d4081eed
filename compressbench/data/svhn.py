"""SVHN (32x32 RGB house-number digits, 73k train / 26k test) via torchvision's reader of the .mat files."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from compressbench.data.fetch import download_guard, require_files
from compressbench.data.fingerprint import file_checksums, files_digest
from compressbench.data.registry import CHECKS, DATASETS
from compressbench.data.split import DataBundle, Split, assemble, read_options

# No flip: digits are not mirror symmetric. The 531k "extra" images are left out (the usual small setting).
DEFAULTS: dict[str, Any] = {"download": True, "augment": {"crop_padding": 4, "flip": False}}
URL = "http://ufldl.stanford.edu/housenumbers/"
MAT_FILES = ("train_32x32.mat", "test_32x32.mat")  # torchvision's SVHN.split_list (without importing it)


@CHECKS.register("svhn")
def check_svhn(cfg: Mapping[str, Any], data_dir: Path, files: bool) -> None:
    opts = read_options(cfg, DEFAULTS, "svhn")
    if files:
        require_files("svhn", [data_dir / "svhn" / f for f in MAT_FILES], data_dir / "svhn", opts["download"],
                      f"fetch {', '.join(MAT_FILES)} from {URL} into it")


@DATASETS.register("svhn")
def load_svhn(cfg: Mapping[str, Any], data_dir: Path, cache_dir: Path) -> DataBundle:
    """Reads ``data_dir/svhn/{train,test}_32x32.mat``, downloading them when allowed."""
    from torchvision.datasets import SVHN

    opts = read_options(cfg, DEFAULTS, "svhn")
    where = data_dir / "svhn"
    files = [where / SVHN.split_list[s][1] for s in ("train", "test")]
    require_files("svhn", files, where, opts["download"])
    with download_guard("svhn", data_dir, opts["download"], where, f"fetch {', '.join(MAT_FILES)} from {URL} into {where}"):
        # Each split is its own file (and download), so both constructors get `download`.
        train = SVHN(str(where), split="train", download=opts["download"])
        test = SVHN(str(where), split="test", download=opts["download"])

    def split(ds: SVHN) -> Split:
        # torchvision already mapped label 10 (SVHN's "0") to 0, and transposed to NCHW as a view.
        return Split(nchw_in_place(ds.data), torch.from_numpy(ds.labels).long())

    digest = files_digest(file_checksums(files, cache_dir))
    return assemble("svhn", split(train), split(test), [str(d) for d in range(10)], opts, source_digest=digest)


def nchw_in_place(data: np.ndarray, chunk: int = 4096) -> torch.Tensor:
    """A C-contiguous [N, C, H, W] tensor of torchvision's NCHW view of MATLAB's column-major array.

    That view is contiguous per image channel but stores each plane column-major; transposing the planes in
    place, a chunk at a time, fixes it without a second copy of the set (a copy would double the peak).
    """
    planes = data.transpose(0, 1, 3, 2)  # the memory as it lies: [N, C, W, H], C-contiguous
    if not planes.flags.c_contiguous or not planes.flags.writeable:
        return torch.from_numpy(np.ascontiguousarray(data))
    w, h = planes.shape[2:]
    t = torch.from_numpy(planes).view(-1, w * h)
    for i in range(0, len(t), chunk):
        t[i:i + chunk] = t[i:i + chunk].view(-1, w, h).transpose(1, 2).reshape(-1, w * h)
    return t.view(data.shape)
