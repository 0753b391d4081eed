"""Image files → one uint8 tensor, decoded in parallel and cached, keyed by the file list, sizes and mtimes.

The cache lives in the data cache folder that ``load_dataset`` hands the loaders (``<paths.cache_dir>/data``),
never in the user's image folder. It holds tensors, strings and lists only, and is read with
``weights_only=True``. Decoded images go straight into one preallocated [N, 3, S, S] tensor, so decoding
needs the final size plus a few in-flight chunks, not a list of arrays and a stacked copy.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import multiprocessing
import os
import struct
import sys
import warnings
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from compressbench.data.fingerprint import listing_digest
from compressbench.data.split import shrink_rows_
from compressbench.infra.atomic import atomic_write
from compressbench.infra.locks import file_lock

log = logging.getLogger(__name__)

RESIZE = "shorter side to image_size (bilinear), centre crop"
CACHE_VERSION = 2  # bump when decoding or the cache's content changes, so old caches are not reused
CHUNK = 256  # files per worker task: large enough to amortise the hand-off, small enough for a smooth bar
MIN_PARALLEL = 1024  # below this a worker pool costs more than it saves
# Images above this many pixels (by their header, before decoding) are skipped: a 76 KB PNG can claim 20000x20000
# and a 12000x12000 one decodes to 0.5 GB per worker. PIL's own bomb-warning threshold (a quarter GiB of RGB):
# above every phone camera (<= 50 MP) and 61 MP full-frame sensors. ``dataset.max_image_pixels`` moves it.
MAX_PIXELS = 89_478_485


class TooLarge(ValueError):
    """An image whose header claims more pixels than the limit; it is skipped, never decoded."""


def decode_image(path: str, size: int, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """One image file → uint8 [size, size, 3] RGB (shorter side resized, centre-cropped; same size: as is).

    Raises TooLarge, before decoding, when the header claims more than ``max_pixels`` pixels."""
    from PIL import Image, ImageOps

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the limit below decides, per file
        try:
            opened = Image.open(path)  # reads the header only
        except Image.DecompressionBombError as e:  # PIL refuses past twice its threshold, whatever ours is
            raise TooLarge(f"over the pixel limit ({e})") from None
    with opened as img:
        if img.width * img.height > max_pixels:
            raise TooLarge(f"{img.width}x{img.height} is {img.width * img.height / 1e6:.0f} megapixels, over "
                           f"dataset.max_image_pixels={max_pixels}")
        img.draft("RGB", (size, size))  # JPEG: decode at a reduced scale that is still >= size (much faster)
        rgb = img.convert("RGB")
    if rgb.size != (size, size):  # an image already at the size (CIFAR's 32x32) is never resampled
        rgb = ImageOps.fit(rgb, (size, size), method=Image.Resampling.BILINEAR)
    return np.asarray(rgb, dtype=np.uint8)


def _decode_chunk(start: int, paths: Sequence[str], size: int,
                  max_pixels: int = MAX_PIXELS) -> tuple[int, np.ndarray, list[int], list[str]]:
    """Decode ``paths`` (file ``start + i``): (start, stacked images, indices decoded, errors of the rest)."""
    images, ok, errors = [], [], []
    for i, path in enumerate(paths):
        try:
            images.append(decode_image(path, size, max_pixels))
            ok.append(start + i)
        # What PIL raises on a corrupt, truncated, hostile or too large file: one such file must not sink the set.
        except (OSError, ValueError, SyntaxError, EOFError, IndexError, struct.error) as e:
            errors.append(f"{path}: {type(e).__name__}: {e}")
    stacked = np.stack(images) if images else np.zeros((0, size, size, 3), np.uint8)
    return start, stacked, ok, errors


def relative_paths(root: Path, paths: Sequence[str]) -> list[str]:
    """``paths`` relative to ``root`` (a prefix cut: os.path.relpath costs 30 us a file, 2 s for 60k)."""
    prefix = os.path.join(str(root), "")
    return [p[len(prefix):] if p.startswith(prefix) else os.path.relpath(p, root) for p in paths]


def decode_cached(root: Path, samples: Sequence[tuple[str, int]], listing: Sequence[tuple[str, int, int, int]],
                  size: int, cache_dir: Path, max_pixels: int = MAX_PIXELS) -> dict[str, Any]:
    """{images uint8 [M, 3, S, S], labels, kept (indices into ``samples`` of the M decoded), skipped, errors}.

    ``listing`` holds (relative path, label, size, mtime_ns) of each sample. From ``cache_dir`` when the
    listing matches the cached one's; else decoded and written there. Images over ``max_pixels`` are skipped.
    """
    key = listing_digest(listing, f"decoded v{CACHE_VERSION}|{size}|{RESIZE}|max_pixels={max_pixels}")
    cache = cache_dir / f"{hashlib.sha256(os.fsencode(str(root))).hexdigest()[:16]}_{size}.pt"
    hit = _read_cache(cache, key, size)
    if hit is not None:
        return hit
    lock = contextlib.ExitStack()
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        lock.enter_context(file_lock(cache.with_suffix(".lock"), f"decoding of {root}"))
    except OSError as e:  # an unwritable cache dir must not stop the run: decode without caching
        warnings.warn(f"cannot cache the decoded images in {cache_dir} ({e}); set paths.cache_dir to a "
                      f"writable folder to decode once", stacklevel=3)
        return {"key": key, **_decode(root, samples, listing, size, None, max_pixels)}
    with lock:
        hit = _read_cache(cache, key, size)  # another job may have decoded it while we waited
        if hit is not None:
            return hit
        data = {"key": key, **_decode(root, samples, listing, size, cache, max_pixels)}
        try:
            atomic_write(cache, lambda f: torch.save(data, f))  # streamed: no in-memory copy of the file
        except OSError as e:  # e.g. a full disk: this run goes on, the next one decodes again
            warnings.warn(f"could not write the decode cache {cache} ({e})", stacklevel=3)
    return data


def _read_cache(path: Path, key: str, size: int) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = torch.load(path, weights_only=True)
    except Exception:  # unreadable or from another version: decode again and overwrite it
        return None
    if not (isinstance(data, dict) and data.get("key") == key):
        return None
    images, labels, kept = data.get("images"), data.get("labels"), data.get("kept")
    if not (isinstance(images, torch.Tensor) and images.dtype == torch.uint8 and images.shape[1:] == (3, size, size)
            and isinstance(labels, torch.Tensor) and isinstance(kept, torch.Tensor)
            and len(labels) == len(kept) == len(images)):
        return None
    return data


def _decode(root: Path, samples: Sequence[tuple[str, int]], listing: Sequence[tuple[str, int, int, int]],
            size: int, cache: Path | None, max_pixels: int) -> dict[str, Any]:
    workers = default_workers(len(samples))
    log.info("decoding %d images under %s to %dx%d with %d process(es)%s", len(samples), root, size, size, workers,
             f" (once; cached in {cache})" if cache else "")
    images, index, errors = decode_files([p for p, _ in samples], size, workers=workers, max_pixels=max_pixels)
    if len(index) == 0:
        raise FileNotFoundError(f"none of the {len(samples)} image files under {root} could be decoded (first "
                                f"error: {errors[0] if errors else '?'}); check that they are images")
    skipped = np.setdiff1d(np.arange(len(samples)), index)
    return {"images": images, "labels": torch.tensor([samples[i][1] for i in index], dtype=torch.int64),
            "kept": torch.from_numpy(index.astype(np.int64)), "skipped": [listing[i][0] for i in skipped],
            "errors": errors}


def default_workers(n: int) -> int:
    return min(os.cpu_count() or 1, 32) if n >= MIN_PARALLEL else 1


def decode_files(paths: Sequence[str], size: int, *, workers: int = 1, mode: str = "process",
                 progress: bool | None = None,
                 max_pixels: int = MAX_PIXELS) -> tuple[torch.Tensor, np.ndarray, list[str]]:
    """Decode ``paths`` into one preallocated uint8 [M, 3, size, size] tensor (the M readable ones, in order).

    Returns (images, indices of the decoded paths, errors of the others). ``mode``: ``process`` (a pool of
    ``workers`` processes; what loading uses: PIL holds the GIL for much of a small image's work, so threads
    do not scale, see findings/benchmarks/bench_data.csv), ``thread``, or ``serial``. ``progress``: a tqdm bar
    (None = only on a terminal).
    """
    from compressbench.infra.progress import bar as progress_bar

    n = len(paths)
    chunks = [(s, paths[s:s + CHUNK]) for s in range(0, n, CHUNK)]
    pool: Executor | None = None
    if workers > 1 and mode == "process":  # started before the big allocation, which the workers never need
        pool = ProcessPoolExecutor(workers, mp_context=pool_context())
    elif workers > 1 and mode == "thread":
        pool = ThreadPoolExecutor(workers)
    images = torch.empty((n, 3, size, size), dtype=torch.uint8)
    kept = np.zeros(n, dtype=bool)
    errors: list[str] = []
    try:
        with progress_bar(total=n, desc="decoding images", unit="img",
                          enabled=progress is None or progress) as bar:
            results = (pool.map(_decode_chunk, *zip(*chunks, strict=True), [size] * len(chunks),
                                [max_pixels] * len(chunks)) if pool and chunks
                       else (_decode_chunk(start, chunk, size, max_pixels) for start, chunk in chunks))
            for _, stacked, ok, errs in results:
                if ok:
                    images[torch.tensor(ok)] = torch.from_numpy(stacked).permute(0, 3, 1, 2)
                    kept[ok] = True
                errors.extend(errs)
                bar.update(len(ok) + len(errs))
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    index = np.flatnonzero(kept)
    return _compact_(images, index), index, errors


def _compact_(images: torch.Tensor, index: np.ndarray) -> torch.Tensor:
    """Move the rows ``index`` (sorted) to the front and shrink the storage to them: no second copy."""
    for new, old in enumerate(index.tolist()):
        if new != old:
            images[new] = images[old]
    return shrink_rows_(images, len(index))


def pool_context() -> Any:
    # fork starts workers in milliseconds and they only run PIL and numpy; elsewhere the platform's default.
    if sys.platform == "linux":
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context()
