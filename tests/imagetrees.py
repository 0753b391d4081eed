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
