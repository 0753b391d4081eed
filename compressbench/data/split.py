"""The data model (Split, Augment, DataBundle), dataset options, and the seeded stratified splits.

Every dataset module turns its source into uint8 tensors and hands them to ``assemble``, which carves the
test split (where the dataset has no official one) and the validation split, computes the normalisation
statistics of the train split, fingerprints the result and records how it all was made in ``split_info``.

Memory: ``assemble`` reorders the source rows in place (train, then val, then test) and hands out slices of
that one tensor, so a bundle holds its images once; the statistics are summed in small chunks.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from compressbench.data.fingerprint import bundle_fingerprint, tensor_digest

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
    # sha256 of the data actually loaded (source files or arrays, split indices, tensor-shaping options): the
    # stage cache keys on it, so moved, added or deleted images recompute every stage.
    fingerprint: str = ""
    skipped_count: int = 0  # source files that could not be decoded (listed in split_info["skipped_files"])


def read_options(cfg: Mapping[str, Any] | None, defaults: Mapping[str, Any], dataset: str, *,
                 auto_size: bool = False) -> dict[str, Any]:
    """Merge the ``dataset`` config node over ``defaults`` (which include COMMON_DEFAULTS); check the common keys.

    Unknown keys are errors (a typo such as ``dataset.val_fration`` must not be silently ignored). With
    ``auto_size``, ``image_size`` may be None (the loader picks it from the images).
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
    size = opts.get("image_size")
    if "image_size" in opts and not (auto_size and size is None) and (
            not isinstance(size, int) or isinstance(size, bool) or size < 8):
        raise ValueError(f"dataset.image_size={size!r}: must be an integer >= 8"
                         + (" or null (the images' own size)" if auto_size else ""))
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


def channel_stats(images: torch.Tensor, chunk_elements: int = 1 << 20) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images in [0, 1] units.

    Summed over chunks of about ``chunk_elements`` pixels (float32 within an image, float64 across images), so
    there is no float copy of the whole set and the reductions run over contiguous memory.
    """
    n, c = images.shape[:2]
    s = torch.zeros(c, dtype=torch.float64)
    s2 = torch.zeros(c, dtype=torch.float64)
    rows = max(1, chunk_elements // max(images[0].numel(), 1)) if n else 1
    for i in range(0, n, rows):
        x = images[i:i + rows].reshape(-1, c, images[0, 0].numel()).to(torch.float32)
        s += x.sum(2).to(torch.float64).sum(0)
        s2 += x.square_().sum(2).to(torch.float64).sum(0)
    count = max(images.numel() // c, 1)
    mean = s / count / 255
    var = (s2 / count / 255**2 - mean**2).clamp_min(0)
    std = var.sqrt().clamp_min(1e-3)  # a constant channel must not divide by zero
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def shrink_rows_(images: torch.Tensor, rows: int) -> torch.Tensor:
    """The first ``rows`` rows of ``images`` with the storage shrunk to them (no copy; for over-allocations)."""
    if rows == len(images):
        return images
    storage = images.untyped_storage()
    storage.resize_(rows * images[0].numel() * images.element_size())
    return torch.empty(0, dtype=images.dtype).set_(storage, 0, (rows, *images.shape[1:]))


def permute_rows_(images: torch.Tensor, order: np.ndarray) -> None:
    """``images[:] = images[order]`` in place with one spare row: each cycle of the permutation is walked once.

    A gather (``index_select``) would hold the set twice; this costs a Python step per row (about 0.2 s for
    60k rows), which is small next to decoding them.
    """
    rows = images.numpy().reshape(len(images), -1)
    target = order.tolist()
    done = np.zeros(len(target), dtype=bool)
    spare = np.empty_like(rows[0]) if len(rows) else None
    for start in range(len(target)):
        if done[start]:
            continue
        done[start] = True
        if target[start] == start:
            continue
        spare[...] = rows[start]
        j = start
        while target[j] != start:
            k = target[j]
            rows[j] = rows[k]
            done[k] = True
            j = k
        rows[j] = spare


def assemble(name: str, source: Split, test: Split | None, class_names: Sequence[str], opts: Mapping[str, Any],
             extra_info: Mapping[str, Any] | None = None, *, val: Split | None = None,
             source_digest: str | None = None, skipped_count: int = 0) -> DataBundle:
    """Carve test (when ``test`` is None) and val (when ``val`` is None) from ``source``; return the bundle.

    ``source`` is reordered in place (train, val, test) and the bundle's splits are slices of it: the caller
    hands its tensors over. ``source_digest`` identifies the files the data came from (see fingerprint.py);
    without one the tensors themselves are hashed (fine for small in-memory sets such as digits).
    """
    labels = source.labels.numpy()
    n_source = len(source)
    if source_digest is None:
        source_digest = tensor_digest(*(t for s in (source, val, test) if s is not None for t in (s.images, s.labels)))
    test_idx = None
    keep = np.arange(n_source)
    if test is None:
        keep, test_idx = stratified_split(labels, opts["test_fraction"], TEST_SEED)
    if val is None:
        rel_train, rel_val = stratified_split(labels[keep], opts["val_fraction"], opts["split_seed"])
        train_idx, val_idx = keep[rel_train], keep[rel_val]
    else:
        train_idx, val_idx = keep, None
    parts = [p for p in (train_idx, val_idx, test_idx) if p is not None]
    order = np.concatenate(parts).astype(np.int64)
    permute_rows_(source.images, order)
    source.labels.copy_(source.labels[torch.from_numpy(order)])
    bounds = np.cumsum([0, *(len(p) for p in parts)]).tolist()
    views = [Split(source.images[a:b], source.labels[a:b]) for a, b in zip(bounds, bounds[1:], strict=False)]
    train = views.pop(0)
    val = views.pop(0) if val is None else val
    test = views.pop(0) if test is None else test
    n, c, h, w = train.images.shape
    if h != w:
        raise ValueError(f"dataset '{name}': images must be square, got {h}x{w}")
    mean, std = channel_stats(train.images)
    augment = make_augment(opts, h)
    k = len(class_names)

    def counts(s: Split) -> list[int]:
        return [int(v) for v in torch.bincount(s.labels, minlength=k)]

    extra = dict(extra_info or {})
    fingerprint = bundle_fingerprint(name, source_digest, class_names, {"train": train_idx, "val": val_idx,
                                     "test": test_idx}, {"image_size": h, "resize": extra.get("resize")})
    info: dict[str, Any] = {
        "dataset": name, "split_seed": opts["split_seed"],
        "val_fraction": None if val_idx is None else opts["val_fraction"],
        "val_source": "carved" if val_idx is not None else "official",
        "test_source": "official" if test_idx is None else "carved",
        "test_fraction": None if test_idx is None else opts["test_fraction"],
        "test_seed": None if test_idx is None else TEST_SEED,
        "source_size": n_source, "sizes": {"train": n, "val": len(val), "test": len(test)},
        "class_names": list(class_names),
        "class_counts": {"train": counts(train), "val": counts(val), "test": counts(test)},
        "mean": list(mean), "std": list(std),
        # Indices into the source training set (val and test only where they were carved).
        "val_indices": None if val_idx is None else [int(i) for i in val_idx],
        "test_indices": None if test_idx is None else [int(i) for i in test_idx],
        "fingerprint": fingerprint, "skipped_count": skipped_count,
        **extra,
    }
    return DataBundle(name=name, train=train, val=val, test=test, num_classes=k, in_channels=c, image_size=h,
                      mean=mean, std=std, class_names=list(class_names), augment=augment, split_info=info,
                      fingerprint=fingerprint, skipped_count=skipped_count)


def _plain(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """A plain, resolved dict of a DictConfig or mapping."""
    try:
        from omegaconf import DictConfig, OmegaConf
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        return dict(cfg)
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    return {k: (_plain(v) if isinstance(v, Mapping) else v) for k, v in cfg.items()}
