"""CIFAR-10 (32x32 RGB, 10 classes, 50k train / 10k test) via torchvision's reader of the python batches."""
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

DEFAULTS: dict[str, Any] = {"download": True, "augment": {"crop_padding": 4, "flip": True}}
FILES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch",
         "batches.meta")
URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"


@DATASETS.register("cifar10")
def load_cifar10(cfg: Mapping[str, Any], data_dir: Path, cache_dir: Path) -> DataBundle:
    """Reads ``data_dir/cifar-10-batches-py/`` (torchvision's layout), downloading it when allowed."""
    from torchvision.datasets import CIFAR10

    opts = read_options(cfg, DEFAULTS, "cifar10")
    where = data_dir / CIFAR10.base_folder
    require_files("cifar10", [where / f for f in FILES], where, opts["download"])
    with download_guard("cifar10", data_dir, opts["download"], where, URL):
        train = CIFAR10(str(data_dir), train=True, download=opts["download"])
        test = CIFAR10(str(data_dir), train=False, download=False)

    def split(ds: CIFAR10) -> Split:
        # torchvision keeps CIFAR as NHWC numpy (for PIL); we want NCHW tensors.
        images = torch.from_numpy(np.ascontiguousarray(ds.data)).permute(0, 3, 1, 2).contiguous()
        return Split(images, torch.as_tensor(ds.targets, dtype=torch.int64))

    digest = files_digest(file_checksums([where / f for f in FILES], cache_dir))
    return assemble("cifar10", split(train), split(test), list(train.classes), opts, source_digest=digest)
