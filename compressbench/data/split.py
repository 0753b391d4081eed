"""The data model (Split, Augment, DataBundle), dataset options, and the seeded stratified splits.

Every dataset module turns its source into uint8 tensors and hands them to ``assemble``, which carves the
test split (where the dataset has no official one) and the validation split, computes the normalisation
statistics of the train split and records how it all was made in ``split_info``.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

# The carved test split must not move when users vary `split_seed` (results across seeds would then be
# measured on different test sets), so it uses its own fixed seed.
TEST_SEED = 0

COMMON_DEFAULTS: dict[str, Any] = {"val_fraction": 0.1, "split_seed": 0,
                                   "augment": {"crop_padding": 0, "flip": False}}


@dataclass
class Split:
    """One split held in memory: uint8 images [N, C, H, W] (contiguous) and int64 labels [N]."""

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise TypeError(f"Split.images must be uint8 [N, C, H, W], got {self.images.dtype} "
                            f"{tuple(self.images.shape)}")
        if self.labels.shape != (len(self.images),):
            raise ValueError(f"Split.labels must be [N={len(self.images)}], got {tuple(self.labels.shape)}")
        self.images = self.images.contiguous()
        self.labels = self.labels.to(torch.int64)

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class Augment:
    """Training-time augmentation, applied batch-wise by TensorLoader."""

    crop_padding: int = 0  # random crop with this zero padding (0 = off)
    flip: bool = False  # random horizontal flip

    @property
    def active(self) -> bool:
        return self.crop_padding > 0 or self.flip


@dataclass
class DataBundle:
    """A dataset ready for training: three in-memory splits plus what models and loaders need to know."""

    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int
    in_channels: int
    image_size: int
    mean: tuple[float, ...]  # per channel, of the train split, in [0, 1] units
    std: tuple[float, ...]
    class_names: list[str]
    augment: Augment = field(default_factory=Augment)
    split_info: dict = field(default_factory=dict)  # JSON-serialisable: how train/val/test were made
    fingerprint: str = ""  # sha256 of the data actually loaded (files, split indices): part of every stage key


def read_options(cfg: Mapping[str, Any] | None, defaults: Mapping[str, Any], dataset: str) -> dict[str, Any]:
    """Merge the ``dataset`` config node over ``defaults`` (which include COMMON_DEFAULTS); check the common keys.

    Unknown keys are errors (a typo such as ``dataset.val_fration`` must not be silently ignored).
    """
    given = _plain(cfg) if cfg is not None else {}
    given.pop("name", None)
    defaults = {**COMMON_DEFAULTS, **defaults}
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ValueError(f"dataset '{dataset}' has no option {', '.join(unknown)}; "
                         f"its options: name, {', '.join(sorted(defaults))}")
    augment = {**defaults["augment"], **(given.pop("augment", None) or {})}
    bad = sorted(set(augment) - {"crop_padding", "flip"})
    if bad:
        raise ValueError(f"dataset.augment has no option {', '.join(bad)}; its options: crop_padding, flip")
    opts = {**defaults, **given, "augment": augment}
    vf = opts["val_fraction"]
    if not isinstance(vf, (int, float)) or isinstance(vf, bool) or not 0 <= vf <= 0.5:
        raise ValueError(f"dataset.val_fraction={vf!r}: must be a number in [0, 0.5]")
    if "test_fraction" in opts:
        tf = opts["test_fraction"]
        if not isinstance(tf, (int, float)) or isinstance(tf, bool) or not 0 < tf <= 0.5:
            raise ValueError(f"dataset.test_fraction={tf!r}: must be a number in (0, 0.5]")
    if not isinstance(opts["split_seed"], int) or isinstance(opts["split_seed"], bool):
        raise ValueError(f"dataset.split_seed={opts['split_seed']!r}: must be an integer")
    if "download" in opts and not isinstance(opts["download"], bool):
        raise ValueError(f"dataset.download={opts['download']!r}: must be true or false")
    if "image_size" in opts and (not isinstance(opts["image_size"], int) or opts["image_size"] < 8):
        raise ValueError(f"dataset.image_size={opts['image_size']!r}: must be an integer >= 8")
    return opts


def make_augment(opts: Mapping[str, Any], image_size: int) -> Augment:
    """The Augment of ``opts['augment']``, checked against the image size."""
    pad, flip = opts["augment"]["crop_padding"], opts["augment"]["flip"]
    if not isinstance(pad, int) or isinstance(pad, bool) or not 0 <= pad <= image_size // 2:
        raise ValueError(f"dataset.augment.crop_padding={pad!r}: must be an integer in [0, image_size // 2 = "
                         f"{image_size // 2}] (0 turns random cropping off)")
    if not isinstance(flip, bool):
        raise ValueError(f"dataset.augment.flip={flip!r}: must be true or false")
    return Augment(crop_padding=pad, flip=flip)


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split indices ``0..N-1`` into (keep, take), ``take`` holding ``fraction`` of every class.

    Per-class counts are allotted by largest remainder, so the total is ``round(N * fraction)`` and every class
    is within one sample of its share; a class keeps at least one sample. Both index arrays are sorted.
    """
    labels = np.asarray(labels)
    n = len(labels)
    classes, counts = np.unique(labels, return_counts=True)
    quota = counts * fraction
    take_n = np.floor(quota).astype(np.int64)
    # Hand the leftover samples to the classes with the largest remainders (ties: lower class first).
    leftover = int(round(n * fraction)) - int(take_n.sum())
    order = sorted(range(len(classes)), key=lambda i: (-(quota[i] - take_n[i]), i))
    for i in order[:max(leftover, 0)]:
        take_n[i] += 1
    take_n = np.minimum(take_n, np.maximum(counts - 1, 0))
    perm = np.random.default_rng(seed).permutation(n)
    shuffled = labels[perm]
    take = [perm[shuffled == c][:k] for c, k in zip(classes, take_n, strict=True)]
    take_idx = np.sort(np.concatenate(take)) if take else np.zeros(0, np.int64)
    mask = np.ones(n, dtype=bool)
    mask[take_idx] = False
    return np.flatnonzero(mask), take_idx.astype(np.int64)


def channel_stats(images: torch.Tensor, chunk: int = 4096) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images in [0, 1] units (chunked: no float copy of the whole set)."""
    c = images.shape[1]
    s = torch.zeros(c, dtype=torch.float64)
    s2 = torch.zeros(c, dtype=torch.float64)
    for i in range(0, len(images), chunk):
        x = images[i:i + chunk].to(torch.float64).transpose(0, 1).reshape(c, -1)
        s += x.sum(1)
        s2 += (x * x).sum(1)
    count = max(images.numel() // c, 1)
    mean = s / count / 255
    var = (s2 / count / 255**2 - mean**2).clamp_min(0)
    std = var.sqrt().clamp_min(1e-3)  # a constant channel must not divide by zero
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def assemble(name: str, source: Split, test: Split | None, class_names: Sequence[str], opts: Mapping[str, Any],
             extra_info: Mapping[str, Any] | None = None) -> DataBundle:
    """Carve test (when ``test`` is None) and val from ``source``; return the bundle with its split record."""
    labels = source.labels.numpy()
    test_idx = None
    keep = np.arange(len(source))
    if test is None:
        keep, test_idx = stratified_split(labels, opts["test_fraction"], TEST_SEED)
    rel_train, rel_val = stratified_split(labels[keep], opts["val_fraction"], opts["split_seed"])
    train_idx, val_idx = keep[rel_train], keep[rel_val]

    def take(idx: np.ndarray) -> Split:
        t = torch.from_numpy(idx)
        return Split(source.images.index_select(0, t), source.labels.index_select(0, t))

    train, val = take(train_idx), take(val_idx)
    if test_idx is not None:
        test = take(test_idx)
    assert test is not None
    n, c, h, w = train.images.shape
    if h != w:
        raise ValueError(f"dataset '{name}': images must be square, got {h}x{w}")
    mean, std = channel_stats(train.images)
    augment = make_augment(opts, h)
    k = len(class_names)

    def counts(s: Split) -> list[int]:
        return [int(v) for v in torch.bincount(s.labels, minlength=k)]

    info: dict[str, Any] = {
        "dataset": name, "split_seed": opts["split_seed"], "val_fraction": opts["val_fraction"],
        "test_source": "official" if test_idx is None else "carved",
        "test_fraction": None if test_idx is None else opts["test_fraction"],
        "test_seed": None if test_idx is None else TEST_SEED,
        "source_size": len(source), "sizes": {"train": n, "val": len(val), "test": len(test)},
        "class_names": list(class_names),
        "class_counts": {"train": counts(train), "val": counts(val), "test": counts(test)},
        "mean": list(mean), "std": list(std),
        # Indices into the source training set (the test indices only where the test split was carved).
        "val_indices": [int(i) for i in val_idx],
        "test_indices": None if test_idx is None else [int(i) for i in test_idx],
        **(extra_info or {}),
    }
    return DataBundle(name=name, train=train, val=val, test=test, num_classes=k, in_channels=c, image_size=h,
                      mean=mean, std=std, class_names=list(class_names), augment=augment, split_info=info)


def _plain(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """A plain, resolved dict of a DictConfig or mapping."""
    try:
        from omegaconf import DictConfig, OmegaConf
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        return dict(cfg)
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    return {k: (_plain(v) if isinstance(v, Mapping) else v) for k, v in cfg.items()}
