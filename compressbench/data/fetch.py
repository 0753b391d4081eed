"""Opening torchvision datasets: a clear error when files are missing, one download per machine under a lock."""
from __future__ import annotations

import contextlib
import http.client
import socket
from collections.abc import Iterator, Sequence
from pathlib import Path
from urllib.error import URLError

from compressbench.infra.locks import file_lock
from compressbench.infra.preflight import DataUnavailable

# What a download raises when there is no network (no DNS, refused, timed out, a proxy's garbage): not a bug.
NETWORK_ERRORS = (URLError, ConnectionError, TimeoutError, socket.gaierror, socket.herror, http.client.HTTPException)


def require_files(name: str, files: Sequence[Path], where: Path, download: bool, how: str = "") -> None:
    """Raise FileNotFoundError (before any torchvision call) when ``files`` are missing and download is off;
    ``how``: how to get them by hand."""
    missing = [f for f in files if not f.is_file()]
    if missing and not download:
        raise FileNotFoundError(
            f"dataset '{name}' not found under {where} (missing {missing[0]}) and download=false; "
            f"run with dataset.download=true to download it there, {f'{how}, ' if how else ''}or set "
            f"paths.data_dir to a folder that already holds it")


@contextlib.contextmanager
def download_guard(name: str, data_dir: Path, download: bool, where: Path, how: str = "") -> Iterator[None]:
    """Hold ``data_dir/.<name>.lock`` while torchvision may download; turn its errors into actionable ones: a
    failed connection (offline, no DNS) into one DataUnavailable line that says where the files go and ``how``
    to get them by hand.

    With download on, the lock is held even when the files exist: another job may be extracting an archive
    right now, and its half-written files would look present.
    """
    guard = file_lock(data_dir / f".{name}.lock", f"the {name} download") if download \
        else contextlib.nullcontext()
    by_hand = f"{how}, or" if how else "or"
    try:
        with guard:
            yield
    except NETWORK_ERRORS as e:
        reason = getattr(e, "reason", None) or e
        raise DataUnavailable(
            f"dataset '{name}' is not under {where} and downloading it failed ({reason}; offline?); {by_hand} "
            f"run where there is internet with the same paths.data_dir, or set paths.data_dir to a folder that "
            f"already holds it") from None
    except RuntimeError as e:
        action = ("downloading it failed" if download else "its files failed torchvision's checks")
        raise RuntimeError(
            f"dataset '{name}' under {where}: {action}: {e}. Delete the partial files and run again with "
            f"dataset.download=true (needs internet){f'; or {how}' if how else ''}") from e
