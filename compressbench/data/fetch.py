"""Opening torchvision datasets: a clear error when files are missing, one download per machine under a lock."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from urllib.error import URLError

from compressbench.infra.locks import file_lock


def require_files(name: str, files: Sequence[Path], where: Path, download: bool) -> None:
    """Raise FileNotFoundError (before any torchvision call) when ``files`` are missing and download is off."""
    missing = [f for f in files if not f.is_file()]
    if missing and not download:
        raise FileNotFoundError(
            f"dataset '{name}' not found under {where} (missing {missing[0]}) and download=false; "
            f"run with dataset.download=true to download it there, or set paths.data_dir to a folder that "
            f"already holds it")


@contextlib.contextmanager
def download_guard(name: str, data_dir: Path, download: bool, where: Path, url: str = "") -> Iterator[None]:
    """Hold ``data_dir/.<name>.lock`` while torchvision may download; turn its errors into actionable ones.

    With download on, the lock is held even when the files exist: another job may be extracting an archive
    right now, and its half-written files would look present.
    """
    guard = file_lock(data_dir / f".{name}.lock", f"the {name} download") if download \
        else contextlib.nullcontext()
    try:
        with guard:
            yield
    except (RuntimeError, URLError) as e:
        action = ("downloading it failed" if download else "its files failed torchvision's checks")
        raise RuntimeError(
            f"dataset '{name}' under {where}: {action}: {e}. Delete the partial files and run again with "
            f"dataset.download=true (needs internet){f', or fetch {url} by hand into {where}' if url else ''}"
        ) from e

