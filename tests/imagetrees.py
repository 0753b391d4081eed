"""Image trees in the real on-disk format (JPEG and PNG under class folders), shared by data tests.

Lives at the top of tests/ (whose conftest puts it on ``sys.path``) so unit and e2e tests import one copy.
"""
from __future__ import annotations

from pathlib import Path

COLORS = [(220, 30, 30), (30, 200, 40), (40, 40, 210), (200, 200, 30), (200, 30, 200), (30, 200, 200)]
CLASSES = ["cat", "dog", "fish"]


def write_class(folder: Path, colour: tuple[int, int, int], n: int, start: int = 0) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(start, start + n):
        img = Image.new("RGB", (20 + 2 * (i % 5), 14 + i % 3), colour)  # non-square, varied sizes
        img.save(folder / (f"{i}.jpg" if i % 2 else f"{i}.png"))


def write_split(root: Path, counts: dict[str, int], classes: list[str] = CLASSES) -> None:
    """``root/<split>/<class>/<i>.(jpg|png)``, ``counts[split]`` images per class; a colour per class."""
    for split, n in counts.items():
        for ci, name in enumerate(classes):
            write_class(root / split / name, COLORS[ci], n, start=1000 * ci)


def png_claiming(path: Path, width: int, height: int) -> None:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels (its data holds far fewer): a decompression
    bomb's header, a few hundred bytes on disk."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 4096))
                     + chunk(b"IEND", b""))
