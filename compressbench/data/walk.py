"""Walking an image folder: which files are the dataset, which are left out, and why (the link policy).

A folder on a shared drive may hold links made by others, and a link must not change what a benchmark measures:
- **never leave the root**: a symlink (file or folder, class folders included) whose target resolves outside the
  dataset root is skipped;
- **each real file once**: files are told apart by device and inode, so a symlink or hard link to a file listed
  elsewhere adds nothing (a file reached without a link wins, else the first in walk order) — the same image can
  never sit in train and test, nor count twice;
- **links that go nowhere** (a folder link back to itself or its parent such as ``cat/again -> .``, a file
  link loop that the OS answers with "Too many levels of symbolic links", a dangling link) are skipped;
- folders whose name starts with ``.`` (and ``__MACOSX``) are not classes; one that holds images (``..cat``) is
  named in the warning, since it may be a class someone meant.
Every skip is listed in ``split.json`` (``not_listed``) and summed up in one warning. Names need not be UTF-8:
undecodable bytes travel as Python's surrogate escapes and are hashed as the bytes they are (``os.fsencode``).
"""
from __future__ import annotations

import errno
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

# (path, label, size, mtime_ns): plain tuples, since 60k stat results would hold ~40 MB
Sample = tuple[str, int, int, int]
HIDDEN_PREFIXES = (".", "__MACOSX")  # dot folders and the debris of zips made on macOS: never classes


@dataclass
class NotListed:
    """What a walk left out, by reason (paths relative to the root)."""

    outside_root: list[str] = field(default_factory=list)
    symlink_loops: list[str] = field(default_factory=list)
    broken_links: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    hidden_folders: list[str] = field(default_factory=list)

    def as_info(self) -> dict[str, list[str]]:
        return {k: sorted(set(v)) for k, v in vars(self).items()}

    def warn(self, root: Path) -> None:
        """One warning that counts each kind of skip and names a few of each; silent when nothing was skipped."""
        what = {"outside_root": "symlink(s) leading outside the root", "symlink_loops": "symlink loop(s)",
                "broken_links": "dangling symlink(s)", "duplicates": "link(s) or hard link(s) to files already listed",
                "hidden_folders": "hidden folder(s) holding images (rename without the leading '.' to use as a class)"}
        parts = [f"{len(set(v))} {what[k]}: {_few(sorted(set(v)))}" for k, v in self.as_info().items() if v]
        if parts:
            warnings.warn(f"image folder {root}: skipped {'; '.join(parts)} (listed in split.json, not_listed; "
                          f"links never leave the root and each real file counts once)", stacklevel=4)


def _few(names: Sequence[str], n: int = 3) -> str:
    return ", ".join(names[:n]) + (" ..." if len(names) > n else "")


def _is_inside(real: str, root_real: str) -> bool:
    return real == root_real or real.startswith(os.path.join(root_real, ""))


class FolderWalk:
    """The walk of one dataset root: its sub-folders and image files under the policy above."""

    def __init__(self, root: Path, extensions: tuple[str, ...]) -> None:
        self.root_real = os.path.realpath(root)
        self.extensions = extensions
        self.not_listed = NotListed()

    def dirs(self, path: Path) -> list[Path]:
        """The sub-folders of ``path`` that may be classes or splits, sorted by name: no hidden ones (those
        holding images are recorded), no folder links whose target is outside the root or does not resolve."""
        out, skipped, root_real = [], self.not_listed, self.root_real
        for p in path.iterdir():
            if p.name.startswith(HIDDEN_PREFIXES):
                if p.name.startswith(".") and p.is_dir() and _holds_images(p, self.extensions):
                    skipped.hidden_folders.append(_rel(str(p), root_real))
                continue
            if p.is_symlink():
                reason = _link_problem(str(p), root_real)
                if reason is not None:  # a link to a file outside is no class either way; say so for folders
                    if reason == "symlink_loops" or (reason == "outside_root" and p.is_dir()):
                        getattr(skipped, reason).append(_rel(str(p), root_real))
                    continue
            if p.is_dir():
                out.append(p)
        return sorted(out, key=lambda p: p.name)

    def images(self, folders: Sequence[Path], classes: Sequence[str]) -> list[list[Sample]]:
        """Per folder (a split), its image files under ``<folder>/<class>/`` in torchvision's order (class by
        class; within a class sorted by folder path, then file name), each real file once across all folders."""
        root_real, skipped = self.root_real, self.not_listed
        found: list[list[tuple[str, int, bool]]] = []  # per folder: (path, label, reached through a link)
        for folder in folders:
            files: list[tuple[str, int, bool]] = []
            for label, name in enumerate(classes):
                start = os.path.join(str(folder), name)
                pairs: list[tuple[str, str, bool]] = []
                _scan(start, False, {os.path.realpath(start)}, root_real, self.extensions, skipped, pairs)
                files += [(os.path.join(d, f), label, link) for d, f, link in sorted(pairs)]
            found.append(files)
        owner: dict[tuple[int, int], tuple[bool, int]] = {}  # (dev, inode) → (via a link, position) of its keeper
        stats: list[list[os.stat_result | None]] = []
        position = 0
        for files in found:
            row: list[os.stat_result | None] = []
            for path, _, link in files:
                try:
                    st = os.stat(path)
                except OSError as e:  # a link that went away, or a loop reached by another name
                    (skipped.symlink_loops if e.errno == errno.ELOOP else skipped.broken_links).append(
                        _rel(path, root_real))
                    row.append(None)
                    continue
                ident = (st.st_dev, st.st_ino)
                if ident not in owner or (link, position) < owner[ident]:
                    owner[ident] = (link, position)
                row.append(st)
                position += 1
            stats.append(row)
        out, position = [], 0
        for files, row in zip(found, stats, strict=True):
            kept = []
            for (path, label, link), st in zip(files, row, strict=True):
                if st is None:
                    continue
                if owner[st.st_dev, st.st_ino] == (link, position):
                    kept.append((path, label, st.st_size, st.st_mtime_ns))
                else:
                    skipped.duplicates.append(_rel(path, root_real))
                position += 1
            out.append(kept)
        return out


def _scan(directory: str, via_link: bool, ancestors: set[str], root_real: str, extensions: tuple[str, ...],
          skipped: NotListed, out: list[tuple[str, str, bool]]) -> None:
    """Append (folder, file name, reached through a link) of every image file under ``directory``."""
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError:  # unreadable folder: nothing from it (as os.walk does)
        return
    for entry in entries:
        image = entry.name.lower().endswith(extensions)
        if entry.is_symlink():
            reason = _link_problem(entry.path, root_real)
            if reason is not None:
                if reason != "broken_links" or image:
                    getattr(skipped, reason).append(_rel(entry.path, root_real))
            elif os.path.isdir(entry.path):
                real = os.path.realpath(entry.path)
                if real in ancestors:  # cat/again -> . : torchvision's walk multiplies the class
                    skipped.symlink_loops.append(_rel(entry.path, root_real))
                else:
                    _scan(entry.path, True, ancestors | {real}, root_real, extensions, skipped, out)
            elif image and os.path.isfile(entry.path):
                out.append((directory, entry.name, True))
        elif entry.is_dir(follow_symlinks=False):
            _scan(entry.path, via_link, ancestors | {os.path.realpath(entry.path)}, root_real, extensions,
                  skipped, out)
        elif image and entry.is_file(follow_symlinks=False):  # not a FIFO named x.jpg: decoding it would hang
            out.append((directory, entry.name, via_link))


def _link_problem(path: str, root_real: str) -> str | None:
    """Why the symlink ``path`` is not followed (a NotListed field name), or None."""
    try:
        real = os.path.realpath(path, strict=True)
    except OSError as e:
        return "symlink_loops" if e.errno == errno.ELOOP else "broken_links"
    return None if _is_inside(real, root_real) else "outside_root"


def _holds_images(folder: Path, extensions: tuple[str, ...]) -> bool:
    try:
        return any(e.name.lower().endswith(extensions) for e in os.scandir(folder))
    except OSError:
        return False


def _rel(path: str, root_real: str) -> str:
    """``path`` relative to the root (paths are built from the resolved root), else as it is."""
    prefix = os.path.join(root_real, "")
    return path[len(prefix):] if path.startswith(prefix) else path
