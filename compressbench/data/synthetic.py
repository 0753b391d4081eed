"""Synthetic, learnable images for tests and smoke runs: a smooth template per class plus pixel noise."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from compressbench.data.registry import CHECKS, DATASETS
from compressbench.data.split import DataBundle, Split, assemble, read_options

DEFAULTS: dict[str, Any] = {
    "num_classes": 4, "in_channels": 1, "image_size": 8, "n_train": 256, "n_test": 128,
    "noise": 0.25,  # std of the Gaussian pixel noise in [0, 1] units; templates span about [0.2, 0.8]
    "seed": 0,  # fixes templates and samples (split_seed only moves the val split)
}


@CHECKS.register("synthetic")
def check_synthetic(cfg: Mapping[str, Any], data_dir: Path, files: bool) -> None:
    read_options(cfg, DEFAULTS, "synthetic")


@DATASETS.register("synthetic")
def load_synthetic(cfg: Mapping[str, Any], data_dir: Path, cache_dir: Path) -> DataBundle:
    """Deterministic in the options; nothing is read from ``data_dir``."""
    opts = read_options(cfg, DEFAULTS, "synthetic")
    k, c, s = opts["num_classes"], opts["in_channels"], opts["image_size"]
    for key, low in (("num_classes", 2), ("in_channels", 1), ("n_train", 2), ("n_test", 1)):
        if not isinstance(opts[key], int) or opts[key] < low:
            raise ValueError(f"dataset.{key}={opts[key]!r}: must be an integer >= {low}")
    if not isinstance(opts["noise"], (int, float)) or opts["noise"] < 0:
        raise ValueError(f"dataset.noise={opts['noise']!r}: must be a number >= 0")
    gen = torch.Generator().manual_seed(int(opts["seed"]))
    # Coarse 4x4 random patterns upsampled: smooth, distinct shapes that a small CNN separates quickly.
    coarse = torch.rand(k, c, 4, 4, generator=gen)
    templates = F.interpolate(coarse, size=(s, s), mode="bilinear", align_corners=False)
    templates = 0.2 + 0.6 * (templates - templates.amin()) / (templates.amax() - templates.amin()).clamp_min(1e-6)

    def sample(n: int) -> Split:
        labels = torch.arange(n) % k  # balanced classes
        labels = labels[torch.randperm(n, generator=gen)]
        noise = torch.randn(n, c, s, s, generator=gen) * float(opts["noise"])
        images = ((templates[labels] + noise).clamp(0, 1) * 255).round().to(torch.uint8)
        return Split(images, labels)

    train, test = sample(opts["n_train"]), sample(opts["n_test"])
    return assemble("synthetic", train, test, [f"class{i}" for i in range(k)], opts)
