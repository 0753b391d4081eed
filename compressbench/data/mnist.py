"""MNIST (28x28 grey digits, 60k train / 10k test) via torchvision's reader of the raw idx files."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from compressbench.data.fetch import download_guard, require_files
from compressbench.data.fingerprint import file_checksums, files_digest
from compressbench.data.registry import CHECKS, DATASETS
from compressbench.data.split import DataBundle, Split, assemble, read_options

DEFAULTS: dict[str, Any] = {"download": True, "augment": {"crop_padding": 2, "flip": False}}
RAW_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
             "t10k-labels-idx1-ubyte")


@CHECKS.register("mnist")
def check_mnist(cfg: Mapping[str, Any], data_dir: Path, files: bool) -> None:
    opts = read_options(cfg, DEFAULTS, "mnist")
    if files:
        where = data_dir / "MNIST" / "raw"
        require_files("mnist", [where / f for f in RAW_FILES], where, opts["download"])


@DATASETS.register("mnist")
def load_mnist(cfg: Mapping[str, Any], data_dir: Path, cache_dir: Path) -> DataBundle:
    """Reads ``data_dir/MNIST/raw/*-ubyte`` (torchvision's layout), downloading them when allowed."""
    from torchvision.datasets import MNIST

    opts = read_options(cfg, DEFAULTS, "mnist")
    where = data_dir / "MNIST" / "raw"
    require_files("mnist", [where / f for f in RAW_FILES], where, opts["download"])
    with download_guard("mnist", data_dir, opts["download"], where):
        train = MNIST(str(data_dir), train=True, download=opts["download"])
        test = MNIST(str(data_dir), train=False, download=False)

    def split(ds: MNIST) -> Split:
        return Split(ds.data.unsqueeze(1).contiguous(), ds.targets.long())

    digest = files_digest(file_checksums([where / f for f in RAW_FILES], cache_dir))
    return assemble("mnist", split(train), split(test), list(train.classes), opts, source_digest=digest)
