"""The sizes image files have on disk (from their headers), and the ``image_size`` an image folder resolves to.

``dataset.image_size: null`` means the images' own size when they are all one size (so 32 px CIFAR JPEGs stay
32 px), capped at AUTO_MAX (a folder of 4000 px photos is not decoded at 4000 px), else AUTO_MAX. Whatever
the size, a run says when its images were resampled: ``split.json`` (``source_sizes``, ``resampled``), the
row (``source_image_size``) and, for upsampling, a warning — 32 px images blown up to 64 px cost 4x the
compute and measure a model on pixels nobody has.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from compressbench.data.decode import CHUNK, default_workers, pool_context
from compressbench.data.fingerprint import listing_digest
from compressbench.infra.atomic import atomic_write_text

log = logging.getLogger(__name__)

AUTO_MAX = 64  # image_size: null never goes above this (the old fixed default of image folders)
MIN_SIZE = 8  # the smallest image_size (as dataset.image_size checks)


def _chunk_sizes(paths: Sequence[str]) -> list[tuple[int, int] | None]:
    """(width, height) from each file's header (None where unreadable: decoding skips and reports it)."""
    from PIL import Image

    out: list[tuple[int, int] | None] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # decoding applies the pixel limit
        for p in paths:
            try:
                with Image.open(p) as img:  # reads the header only
                    out.append(img.size)
            except Exception:  # noqa: BLE001 - any unreadable file is decoding's to report, not ours
                out.append(None)
    return out


def source_sizes(root: Path, paths: Sequence[str], listing: Sequence[tuple[str, int, int, int]],
                 cache_dir: Path) -> Counter[tuple[int, int]]:
    """{(width, height): number of files} of ``paths``, remembered in ``cache_dir`` under the listing (relative
    paths, sizes, mtimes), so 60k headers are read once per version of the folder, not every run."""
    key = listing_digest(listing, "header sizes v1")
    record = cache_dir / f"{hashlib.sha256(os.fsencode(str(root))).hexdigest()[:16]}_sizes.json"
    try:
        data = json.loads(record.read_text())
        if data.get("key") == key:
            return Counter({(int(w), int(h)): int(n) for w, h, n in data["sizes"]})
    except (OSError, ValueError, KeyError, TypeError):
        pass
    chunks = [paths[s:s + CHUNK] for s in range(0, len(paths), CHUNK)]
    workers = default_workers(len(paths))
    if workers > 1:
        with ProcessPoolExecutor(workers, mp_context=pool_context()) as pool:
            found = [s for part in pool.map(_chunk_sizes, chunks) for s in part]
    else:
        found = [s for chunk in chunks for s in _chunk_sizes(chunk)]
    counts = Counter(s for s in found if s is not None)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(record, json.dumps({"key": key, "sizes": [[w, h, n] for (w, h), n in counts.items()]}))
    except OSError:  # an unwritable cache: read the headers again next time
        pass
    return counts


def resolve_image_size(size: int | None, sizes: Counter[tuple[int, int]]) -> int:
    """``size``, or for None the images' own size (their shorter side) when all are one size, within
    [MIN_SIZE, AUTO_MAX]; AUTO_MAX for mixed sizes."""
    if size is not None:
        return size
    if len(sizes) == 1:
        return max(MIN_SIZE, min(AUTO_MAX, min(next(iter(sizes)))))
    return AUTO_MAX


def describe(sizes: Counter[tuple[int, int]]) -> str:
    """``32x32``, or the range of a mixed folder (``20x14..28x16``)."""
    if not sizes:
        return ""
    if len(sizes) == 1:
        return "{}x{}".format(*next(iter(sizes)))
    w, h = zip(*sizes, strict=True)
    return f"{min(w)}x{min(h)}..{max(w)}x{max(h)}"


def resampling(sizes: Counter[tuple[int, int]], size: int) -> str:
    """How decoding changes the images: ``none`` (all already size x size), ``cropped`` (shorter side already
    ``size``), ``upsampled``, ``downsampled`` or ``mixed`` (some up, some down)."""
    shorter = {min(s) for s in sizes}
    if sizes.keys() <= {(size, size)}:
        return "none"
    if shorter == {size}:
        return "cropped"
    if all(s < size for s in shorter):
        return "upsampled"
    if all(s >= size for s in shorter):
        return "downsampled"
    return "mixed"


def report(name: str, root: Path, sizes: Counter[tuple[int, int]], size: int, given: int | None) -> dict[str, object]:
    """Log (and warn on upsampling) how the images of ``root`` become ``size`` x ``size``; the split.json entries."""
    how, source = resampling(sizes, size), describe(sizes)
    chosen = f"dataset.image_size={given}" if given is not None else "dataset.image_size=null: their own size"
    if how in ("upsampled", "mixed"):
        smaller = sum(n for s, n in sizes.items() if min(s) < size)
        own = resolve_image_size(None, sizes)
        hint = (f"set dataset.image_size={own} to keep them as they are" if len(sizes) == 1 and own != size
                else "set dataset.image_size to the size you mean")
        warnings.warn(f"dataset '{name}': upsampling {smaller} of {sum(sizes.values())} images under {root} "
                      f"({source}) to {size}x{size} ({chosen}): the model computes on pixels the images do not "
                      f"have; {hint}", stacklevel=4)
    log.info("dataset '%s': %d images of %s -> %dx%d (%s; %s)", name, sum(sizes.values()), source or "?", size,
             size, how, chosen)
    common = sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0]))[:10]  # photos come in hundreds of sizes
    return {"source_sizes": {f"{w}x{h}": n for (w, h), n in common}, "source_size_count": len(sizes),
            "source_image_size": source,
            "resampled": how, "image_size_chosen": "given" if given is not None else "auto"}
