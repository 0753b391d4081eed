"""Image folders (``<root>/<class name>/<image>``), decoded and resized once into a cached uint8 tensor.

``sea_animals`` is the Kaggle "Sea Animals Image Dataset" (23 classes); ``image_folder`` is the same code for
a user's own folder. Images are resized once at load: the shorter side to ``image_size`` (bilinear, with
PIL's antialiasing), then a centre crop to a square, so aspect ratios are kept and nothing is stretched.
"""
from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from compressbench.data import DATASETS
from compressbench.data.split import DataBundle, Split, assemble, read_options
from compressbench.infra.atomic import atomic_torch_save
from compressbench.infra.locks import file_lock

SEA_ANIMALS_URL = "https://www.kaggle.com/datasets/vencerlanz09/sea-animals-image-dataste"
SEA_DEFAULTS: dict[str, Any] = {
    "root": None,  # null = <paths.data_dir>/sea_animals
    "image_size": 64, "test_fraction": 0.2, "expected_classes": 23,
    "augment": {"crop_padding": 4, "flip": True},  # photos: shifts and mirror images are still the class
}
FOLDER_DEFAULTS: dict[str, Any] = {**SEA_DEFAULTS, "expected_classes": None}
RESIZE = "shorter side to image_size (bilinear), centre crop"
CACHE_VERSION = 1  # bump when decoding changes, so old caches are not reused


def decode_image(path: str, size: int) -> np.ndarray:
    """One image file → uint8 [size, size, 3] RGB (shorter side resized, centre-cropped)."""
    from PIL import Image, ImageOps

    with Image.open(path) as img:
        img.draft("RGB", (size, size))  # JPEG: decode at a reduced scale that is still >= size (much faster)
        rgb = img.convert("RGB")
    return np.asarray(ImageOps.fit(rgb, (size, size), method=Image.Resampling.BILINEAR), dtype=np.uint8)


@DATASETS.register("sea_animals")
def load_sea_animals(cfg: Mapping[str, Any], data_dir: Path) -> DataBundle:
    return _load("sea_animals", read_options(cfg, SEA_DEFAULTS, "sea_animals"), data_dir)


@DATASETS.register("image_folder")
def load_image_folder(cfg: Mapping[str, Any], data_dir: Path) -> DataBundle:
    return _load("image_folder", read_options(cfg, FOLDER_DEFAULTS, "image_folder"), data_dir)


def _load(name: str, opts: dict[str, Any], data_dir: Path) -> DataBundle:
    size, expected = opts["image_size"], opts["expected_classes"]
    if expected is not None and (not isinstance(expected, int) or expected < 2):
        raise ValueError(f"dataset.expected_classes={expected!r}: must be an integer >= 2, or null (no check)")
    if opts["root"] is not None and not isinstance(opts["root"], str):
        raise ValueError(f"dataset.root={opts['root']!r}: must be a path, or null")
    root = find_root(name, opts["root"], data_dir)
    classes = _visible_dirs(root)
    if expected is not None and len(classes) != expected:
        raise ValueError(
            f"dataset '{name}' at {root} has {len(classes)} class folders ({', '.join(c.name for c in classes)}), "
            f"expected {expected}; point dataset.root at the folder that holds the class folders, or set "
            f"dataset.expected_classes=null (dataset=image_folder for a folder of your own)")
    samples = _list_images(root, [c.name for c in classes])
    data = _decode_cached(root, samples, size, data_dir)
    source = Split(data["images"], data["labels"])
    info = {"root": str(root), "resize": RESIZE, "skipped_files": list(data["skipped"])}
    return assemble(name, source, None, [c.name for c in classes], opts, info)


def find_root(name: str, root: str | None, data_dir: Path) -> Path:
    """The folder that holds the class folders; descends through lone wrapper folders (Kaggle zips nest)."""
    if root is None:
        if name == "image_folder":
            raise ValueError("dataset 'image_folder' needs dataset.root=/path/to/folder (holding "
                             "<class name>/<image>.jpg)")
        root = str(data_dir / "sea_animals")
    path = Path(os.path.expanduser(str(root))).resolve()
    if not path.is_dir() or not _visible_dirs(path):
        raise FileNotFoundError(_missing_message(name, path))
    for _ in range(3):
        sub = _visible_dirs(path)
        if len(sub) == 1 and _visible_dirs(sub[0]) and not _image_files(sub[0]):
            path = sub[0]
        else:
            break
    return path


def _missing_message(name: str, path: Path) -> str:
    what = "not found" if not path.is_dir() else "has no class folders"
    if name == "sea_animals":
        return (f"dataset 'sea_animals' {what} at {path}; expected <root>/<class name>/<image>.jpg with 23 class "
                f"folders (e.g. 'Jelly Fish', 'Sea Rays', 'Turtle_Tortoise'). Download it from {SEA_ANIMALS_URL}, "
                f"unzip it there, or set dataset.root=/path/to/it or paths.data_dir=... (it is looked for in "
                f"<paths.data_dir>/sea_animals)")
    return (f"dataset '{name}' {what} at {path}; expected <root>/<class name>/<image>.jpg (one folder per "
            f"class); set dataset.root=/path/to/it")


def _visible_dirs(path: Path) -> list[Path]:
    # Skip hidden folders and the __MACOSX debris of zips made on macOS: neither is a class.
    return sorted((p for p in path.iterdir() if p.is_dir() and not p.name.startswith((".", "__MACOSX"))),
                  key=lambda p: p.name)


def _image_files(path: Path) -> list[Path]:
    from torchvision.datasets.folder import IMG_EXTENSIONS

    return [p for p in path.iterdir() if p.is_file() and p.name.lower().endswith(IMG_EXTENSIONS)]


def _list_images(root: Path, classes: list[str]) -> list[tuple[str, int]]:
    from torchvision.datasets.folder import IMG_EXTENSIONS, make_dataset

    samples = make_dataset(str(root), {c: i for i, c in enumerate(classes)}, extensions=IMG_EXTENSIONS,
                           allow_empty=True)
    empty = sorted(set(classes) - {classes[i] for _, i in samples})
    if empty:
        raise FileNotFoundError(f"class folder(s) {', '.join(map(repr, empty))} under {root} hold no images "
                                f"({', '.join(IMG_EXTENSIONS)}); remove them or add images")
    return samples


def _decode_cached(root: Path, samples: list[tuple[str, int]], size: int, data_dir: Path) -> dict[str, Any]:
    """Decoded images of ``samples``, from the cache file when the file list, sizes and mtimes match."""
    h = hashlib.sha256(f"v{CACHE_VERSION}|{size}|{RESIZE}\n".encode())
    for path, label in samples:
        st = os.stat(path)
        h.update(f"{os.path.relpath(path, root)}\0{label}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    key = h.hexdigest()
    cache = root / f".compressbench_{size}.pt"
    if not os.access(root, os.W_OK):  # a read-only folder of the user's: keep the cache under data_dir
        cache = data_dir / ".compressbench_cache" / f"{hashlib.sha256(str(root).encode()).hexdigest()[:16]}_{size}.pt"
    hit = _read_cache(cache, key)
    if hit is not None:
        return hit
    with file_lock(cache.with_suffix(".lock"), f"decoding of {root}"):
        hit = _read_cache(cache, key)  # another job may have decoded it while we waited
        if hit is not None:
            return hit
        print(f"[compressbench] decoding {len(samples)} images under {root} to {size}x{size} "
              f"(once; cached in {cache})", flush=True)
        data = _decode_all(samples, size)
        data["key"] = key
        atomic_torch_save(data, cache)
    return data


def _read_cache(path: Path, key: str) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = torch.load(path, weights_only=True)
    except Exception:  # unreadable or from another version: decode again and overwrite it
        return None
    return data if isinstance(data, dict) and data.get("key") == key else None


def _decode_all(samples: list[tuple[str, int]], size: int) -> dict[str, Any]:
    def one(path: str) -> np.ndarray | None:
        try:
            return decode_image(path, size)
        except (OSError, ValueError) as e:  # a corrupt or non-image file must not sink a 13k-image dataset
            warnings.warn(f"skipping unreadable image {path}: {e}", stacklevel=2)
            return None

    # PIL releases the GIL while decoding, so threads give a real speedup on this one-off pass.
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        decoded = list(pool.map(one, [p for p, _ in samples]))
    keep = [i for i, a in enumerate(decoded) if a is not None]
    if not keep:
        raise FileNotFoundError(f"none of the {len(samples)} image files could be decoded")
    images = torch.from_numpy(np.stack([decoded[i] for i in keep])).permute(0, 3, 1, 2).contiguous()
    labels = torch.tensor([samples[i][1] for i in keep], dtype=torch.int64)
    skipped = [samples[i][0] for i in range(len(samples)) if decoded[i] is None]
    return {"images": images, "labels": labels, "skipped": skipped}
