"""Image folders, decoded and resized once into a cached uint8 tensor, in a flat or a split layout.

Layouts (``dataset.layout``; ``auto`` tells them apart):
- ``flat``: ``<root>/<class name>/<image>``; test and val are carved from it (stratified, seeded);
- ``split``: ``<root>/train/<class name>/<image>`` with optional ``test/`` and ``val/`` (or ``valid/``,
  ``validation/``, ``training/`` for ``train/``) holding the same class folders; an official folder is used as
  is, and a missing test or val split is carved from train only. A root that is itself the ``train/`` of such a
  layout is refused (``refuse_train_root``): read as flat, it would ignore the official test split.
``sea_animals`` (the Kaggle "Sea Animals Image Dataset", 23 classes, flat), ``cifar10_jpeg`` (CIFAR-10 as
JPEG files, split) and ``image_folder`` (a user's own folder) are the same code with other defaults. Images
are resized once at load: the shorter side to ``image_size`` (bilinear, with PIL's antialiasing), then a
centre crop to a square, so nothing is stretched; an image already at ``image_size`` is used as is.
``image_size: null`` (image_folder's default) is the images' own size when all are one size (data/sizes.py).
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from compressbench.data.decode import MAX_PIXELS, RESIZE, TooLarge, decode_cached, relative_paths
from compressbench.data.fingerprint import listing_digest
from compressbench.data.registry import CHECKS, DATASETS
from compressbench.data.sizes import report, resolve_image_size, source_sizes
from compressbench.data.split import DataBundle, Split, assemble, read_options
from compressbench.data.walk import FolderWalk

SEA_ANIMALS_URL = "https://www.kaggle.com/datasets/vencerlanz09/sea-animals-image-dataste"
SEA_DEFAULTS: dict[str, Any] = {
    "root": None,  # null = <paths.data_dir>/sea_animals
    "layout": "auto", "image_size": 64, "test_fraction": 0.2, "expected_classes": 23, "max_image_pixels": MAX_PIXELS,
    "augment": {"crop_padding": 4, "flip": True},  # photos: shifts and mirror images are still the class
}
# image_size None: the images' own size when all are one size (data/sizes.py)
FOLDER_DEFAULTS: dict[str, Any] = {**SEA_DEFAULTS, "expected_classes": None, "image_size": None}
CIFAR_JPEG_DEFAULTS: dict[str, Any] = {**SEA_DEFAULTS, "image_size": 32, "expected_classes": 10}
LAYOUTS = ("auto", "split", "flat")
SPLIT_DIRS = {"train": "train", "training": "train", "test": "test", "val": "val", "valid": "val",
              "validation": "val"}
SPLIT_HELP = "<root>/train/<class name>/<image> plus optional test/ and val/ (or valid/) with the same classes"


@DATASETS.register("sea_animals")
def load_sea_animals(cfg: Mapping[str, Any], data_dir: Path, cache_dir: Path) -> DataBundle:
    return _load("sea_animals", folder_options("sea_animals", cfg), data_dir, cache_dir)


@DATASETS.register("cifar10_jpeg")
def load_cifar10_jpeg(cfg: Mapping[str, Any], data_dir: Path, cache_dir: Path) -> DataBundle:
    return _load("cifar10_jpeg", folder_options("cifar10_jpeg", cfg), data_dir, cache_dir)


@DATASETS.register("image_folder")
def load_image_folder(cfg: Mapping[str, Any], data_dir: Path, cache_dir: Path) -> DataBundle:
    return _load("image_folder", folder_options("image_folder", cfg), data_dir, cache_dir)


DEFAULTS_OF = {"sea_animals": SEA_DEFAULTS, "cifar10_jpeg": CIFAR_JPEG_DEFAULTS, "image_folder": FOLDER_DEFAULTS}


def check_folder(name: str) -> None:
    """Register the check of the image-folder dataset ``name``: its options, then (files) that its root is there."""

    @CHECKS.register(name)
    def check(cfg: Mapping[str, Any], data_dir: Path, files: bool) -> None:
        opts = folder_options(name, cfg)
        if files:
            refuse_train_root(find_root(name, opts["root"], data_dir), opts["layout"])


for _name in DEFAULTS_OF:
    check_folder(_name)


def folder_options(name: str, cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The checked options of the image-folder dataset ``name`` (ValueError naming the key otherwise)."""
    opts = read_options(cfg, DEFAULTS_OF[name], name, auto_size=True)
    expected, layout, limit = opts["expected_classes"], opts["layout"], opts["max_image_pixels"]
    if expected is not None and (not isinstance(expected, int) or expected < 2):
        raise ValueError(f"dataset.expected_classes={expected!r}: must be an integer >= 2, or null (no check)")
    if opts["root"] is not None and not isinstance(opts["root"], str):
        raise ValueError(f"dataset.root={opts['root']!r}: must be a path, or null")
    if opts["root"] is None and name == "image_folder":
        raise ValueError(_NEEDS_ROOT)
    if layout not in LAYOUTS:
        raise ValueError(f"dataset.layout={layout!r}: must be one of {', '.join(LAYOUTS)} (auto: split when the "
                         f"folder holds train/, else flat)")
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise ValueError(f"dataset.max_image_pixels={limit!r}: must be an integer >= 1 (width x height; larger "
                         f"images are skipped before decoding)")
    return opts


def _load(name: str, opts: dict[str, Any], data_dir: Path, cache_dir: Path) -> DataBundle:
    size, expected, limit = opts["image_size"], opts["expected_classes"], opts["max_image_pixels"]
    root = find_root(name, opts["root"], data_dir)
    walk = FolderWalk(root, _extensions())
    folders = split_folders(root, opts["layout"], walk)
    if not folders:
        refuse_train_root(root, opts["layout"])
    classes = _split_classes(root, folders, walk) if folders else _flat_classes(root, walk)
    if expected is not None and len(classes) != expected:
        raise ValueError(
            f"dataset '{name}' at {root} has {len(classes)} class folders ({', '.join(classes)}), expected "
            f"{expected}; point dataset.root at the folder that holds the class folders (or train/ and test/), "
            f"or set dataset.expected_classes=null (dataset=image_folder for a folder of your own)")
    dirs = {split: root / f for split, f in folders.items()} if folders else {"train": root}
    order = [s for s in ("train", "val", "test") if s in dirs]  # a file in train and test is train's
    lists = dict(zip(order, walk.images([dirs[s] for s in order], classes), strict=True))
    for split, files in lists.items():
        _check_classes(dirs[split], classes, files)
    walk.not_listed.warn(root)
    found = [s for split in ("train", "val", "test") for s in lists.get(split, [])]
    samples = [(path, label) for path, label, _, _ in found]
    listing = [(r, label, size, mtime)
               for r, (_, label, size, mtime) in zip(relative_paths(root, [p for p, _ in samples]), found, strict=True)]
    given = size
    sizes = source_sizes(root, [p for p, _ in samples], listing, cache_dir)
    size = resolve_image_size(given, sizes)
    resized = report(name, root, sizes, size, given)
    data = decode_cached(root, samples, listing, size, cache_dir, limit)
    kept = data["kept"].numpy()
    if data["skipped"]:
        errors = data["errors"]
        large = sum(f": {TooLarge.__name__}: " in e for e in errors)
        warnings.warn(f"skipped {len(data['skipped'])} unreadable image file(s) under {root} (listed in "
                      f"split.json, skipped_files"
                      + (f"; {large} of them over dataset.max_image_pixels={limit}, never decoded" if large else "")
                      + f"): {'; '.join(errors[:3])}{' ...' if len(errors) > 3 else ''}", stacklevel=3)
    digest = listing_digest(listing[i] for i in kept.tolist())
    # The decoded rows keep the sample order, so each split is one contiguous run of rows (a view, no copy).
    starts = np.cumsum([0, *(len(lists.get(s, [])) for s in ("train", "val", "test"))])
    rows = np.searchsorted(kept, starts).tolist()
    splits = {s: Split(data["images"][rows[i]:rows[i + 1]], data["labels"][rows[i]:rows[i + 1]])
              for i, s in enumerate(("train", "val", "test")) if s in lists}
    _check_readable(root, splits, classes, folders)
    info = {"root": str(root), "layout": "split" if folders else "flat", "split_folders": folders or None,
            "resize": RESIZE, **resized, "skipped_files": list(data["skipped"]),
            "not_listed": walk.not_listed.as_info()}
    return assemble(name, splits["train"], splits.get("test"), classes, opts, info, val=splits.get("val"),
                    source_digest=digest, skipped_count=len(data["skipped"]))


def find_root(name: str, root: str | None, data_dir: Path) -> Path:
    """The folder that holds the class folders (or train/); descends through lone wrapper folders (zips nest)."""
    if root is None:
        if name == "image_folder":
            raise ValueError(_NEEDS_ROOT)
        root = str(data_dir / name)
    path = Path(os.path.expanduser(str(root))).resolve()
    walk = FolderWalk(path, ())  # a wrapper folder link never leads out of the folder given
    if not path.is_dir() or not walk.dirs(path):
        raise FileNotFoundError(_missing_message(name, path))
    for _ in range(3):
        sub = walk.dirs(path)
        if (len(sub) == 1 and sub[0].name.lower() not in SPLIT_DIRS and walk.dirs(sub[0])
                and not _image_files(sub[0])):
            path = sub[0].resolve()
        else:
            break
    return path


def refuse_train_root(root: Path, layout: str) -> None:
    """Refuse a root that is the train/ folder of a split dataset (its parent also holds test/ or val/ with the
    same class folders): read as a flat folder, it would carve a test split out of training images and ignore the
    official one, silently. ``dataset.layout=flat`` says the user means it."""
    if layout != "auto" or SPLIT_DIRS.get(root.name.lower()) != "train":
        return
    parent = root.parent
    walk = FolderWalk(parent, ())
    try:
        classes = {d.name for d in walk.dirs(root)}
        same = [d.name for d in walk.dirs(parent) if SPLIT_DIRS.get(d.name.lower(), "train") != "train"
                and {c.name for c in walk.dirs(d)} == classes]
    except OSError:  # a parent we may not list (a shared drive's): nothing to compare with
        return
    if classes and same:
        raise ValueError(
            f"dataset.root={root} is the {root.name}/ folder of a split dataset ({parent} also holds "
            f"{', '.join(f + '/' for f in same)} with the same class folders): its official test split would be "
            f"ignored and one carved out of training images; point dataset.root at {parent} (or set "
            f"dataset.layout=flat to use {root.name}/ alone)")


_NEEDS_ROOT = ("dataset 'image_folder' needs dataset.root=/path/to/folder (holding <class name>/<image>.jpg, or "
               "train/<class name>/<image>.jpg and test/...)")


def split_folders(root: Path, layout: str, walk: FolderWalk | None = None) -> dict[str, str]:
    """{split: folder name} of a split layout ({} = flat), checked against the forced ``layout``."""
    dirs = (walk or FolderWalk(root, ())).dirs(root)
    named: dict[str, list[str]] = {}
    for d in dirs:
        if d.name.lower() in SPLIT_DIRS:
            named.setdefault(SPLIT_DIRS[d.name.lower()], []).append(d.name)
    count = sum(map(len, named.values()))
    if layout == "auto":  # split only when train/ is there and nothing but split folders is
        layout = "split" if "train" in named and count == len(dirs) else "flat"
    if layout == "flat":
        if count >= 2:  # else the folders would silently become classes: a "test vs train" task
            found = ", ".join(f"{n}/" for names in named.values() for n in names)
            raise ValueError(
                f"{root} holds {found}: that is a split layout ({SPLIT_HELP}), not class folders; "
                f"set dataset.layout=split (or auto, when nothing else is in that folder), or rename the "
                f"folders if they really are class names")
        return {}
    if "train" not in named:
        raise FileNotFoundError(f"dataset.layout=split but {root} has no train/ folder (it holds "
                                f"{', '.join(d.name for d in dirs) or 'nothing'}); expected {SPLIT_HELP}")
    twice = {s: names for s, names in named.items() if len(names) > 1}
    if twice:
        raise ValueError(f"{root} has more than one folder for a split ({'; '.join(map(', '.join, twice.values()))}"
                         f"); keep one per split ({SPLIT_HELP})")
    other = [d.name for d in dirs if d.name.lower() not in SPLIT_DIRS]
    if other:
        warnings.warn(f"split layout under {root}: ignoring folder(s) {', '.join(other)} (not train/test/val)",
                      stacklevel=4)
    return {split: names[0] for split, names in named.items()}


def _split_classes(root: Path, folders: dict[str, str], walk: FolderWalk) -> list[str]:
    classes = {s: [d.name for d in walk.dirs(root / f)] for s, f in folders.items()}
    train = classes["train"]
    if not train:
        raise FileNotFoundError(f"{root / folders['train']} holds no class folders; expected {SPLIT_HELP}")
    for split, names in classes.items():
        missing, extra = sorted(set(train) - set(names)), sorted(set(names) - set(train))
        if missing or extra:
            raise ValueError(
                f"the class folders of {folders[split]}/ and {folders['train']}/ under {root} differ: "
                + "; ".join(p for p in (f"{folders[split]}/ lacks {', '.join(missing)}" if missing else "",
                                        f"{folders[split]}/ has {', '.join(extra)} that train/ lacks" if extra
                                        else "") if p)
                + ". Every split needs the same class folders (so that labels mean the same in all of them)")
    return train


def _flat_classes(root: Path, walk: FolderWalk) -> list[str]:
    classes = walk.dirs(root)
    for c in classes:  # a "class" that is itself a dataset: dataset.root points one level too high
        inner = [d.name for d in walk.dirs(c) if d.name.lower() in SPLIT_DIRS]
        if "train" in (n.lower() for n in inner) and len(inner) >= 2:
            raise ValueError(f"class folder {c} holds {', '.join(inner)}: it looks like a dataset of its own; "
                             f"point dataset.root at {c}")
    return [c.name for c in classes]


def _check_readable(root: Path, splits: Mapping[str, Split], classes: list[str], folders: dict[str, str]) -> None:
    """Every class keeps training images after unreadable files were skipped, and no official split is empty."""
    counts = torch.bincount(splits["train"].labels, minlength=len(classes))
    empty = [classes[i] for i in torch.nonzero(counts == 0).flatten().tolist()]
    if empty:
        raise FileNotFoundError(f"class(es) {', '.join(map(repr, empty))} under {root} have no readable training "
                                f"images (see the warning about skipped files); fix or remove them")
    for split, s in splits.items():
        if split != "train" and len(s) == 0:
            raise FileNotFoundError(f"{root / folders[split]} has no readable images")


def _missing_message(name: str, path: Path) -> str:
    what = "not found" if not path.is_dir() else "has no class folders"
    if name == "sea_animals":
        return (f"dataset 'sea_animals' {what} at {path}; expected <root>/<class name>/<image>.jpg with 23 class "
                f"folders (e.g. 'Jelly Fish', 'Sea Rays', 'Turtle_Tortoise'). Download it from {SEA_ANIMALS_URL}, "
                f"unzip it there, or set dataset.root=/path/to/it or paths.data_dir=... (it is looked for in "
                f"<paths.data_dir>/sea_animals)")
    if name == "cifar10_jpeg":
        return (f"dataset 'cifar10_jpeg' {what} at {path}; expected {SPLIT_HELP} (10 classes); set "
                f"dataset.root=/path/to/it or paths.data_dir=... (it is looked for in <paths.data_dir>/cifar10_jpeg)")
    return (f"dataset '{name}' {what} at {path}; expected <root>/<class name>/<image>.jpg (one folder per "
            f"class) or {SPLIT_HELP}; set dataset.root=/path/to/it")


def _extensions() -> tuple[str, ...]:
    from torchvision.datasets.folder import IMG_EXTENSIONS

    return IMG_EXTENSIONS


def _image_files(path: Path) -> list[Path]:
    return [p for p in path.iterdir() if p.is_file() and p.name.lower().endswith(_extensions())]


def _check_classes(folder: Path, classes: list[str], files: list[tuple[str, int, int, int]]) -> None:
    empty = sorted(set(classes) - {classes[label] for _, label, _, _ in files})
    if empty:
        raise FileNotFoundError(f"class folder(s) {', '.join(map(repr, empty))} under {folder} hold no images "
                                f"({', '.join(_extensions())}); remove them or add images")
