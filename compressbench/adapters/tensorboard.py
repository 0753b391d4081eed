"""The only importer of TensorBoard (``logger=tensorboard``): event files written through torch's
``SummaryWriter``, which needs the ``tensorboard`` package (not TensorFlow).

Imported inside the functions so ``import compressbench`` does not load it. Optional dependency:
``pip install "compressbench[tensorboard]"``.
"""
from __future__ import annotations

import importlib.util
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

INSTALL_HINT = 'pip install "compressbench[tensorboard]"'
# PNG colour type (IHDR byte 25) → TensorBoard's colorspace: gray, RGB, palette, gray+alpha, RGBA.
_COLORSPACES = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}


def available() -> bool:
    return importlib.util.find_spec("tensorboard") is not None


def require() -> None:
    if not available():
        raise ImportError(f"logger=tensorboard needs TensorBoard: {INSTALL_HINT}")


class Writer:
    """One run's event file in ``log_dir``.

    Args:
        log_dir: the folder TensorBoard shows as one run (created if absent).
    """

    def __init__(self, log_dir: Path) -> None:
        require()
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(log_dir))

    def scalar(self, tag: str, value: float, step: int) -> None:
        self.writer.add_scalar(tag, float(value), int(step))

    def text(self, tag: str, markdown: str, step: int = 0) -> None:
        """Markdown text (the text dashboard renders it, tables included)."""
        self.writer.add_text(tag, markdown, step)

    def png(self, tag: str, data: bytes, step: int = 0) -> None:
        """An encoded PNG as an image summary, as it is: no decoding, so no imaging library is needed."""
        from tensorboard.compat.proto.summary_pb2 import Summary

        if data[:8] != b"\x89PNG\r\n\x1a\n":
            raise ValueError(f"{tag} is not a PNG file")
        width, height = struct.unpack(">II", data[16:24])
        image = Summary.Image(height=height, width=width, colorspace=_COLORSPACES.get(data[25], 4),
                              encoded_image_string=data)
        self.writer.file_writer.add_summary(Summary(value=[Summary.Value(tag=tag, image=image)]), step)

    def hparams(self, params: Mapping[str, Any], metrics: list[str]) -> None:
        """The HParams dashboard's entry for this run: ``params`` (numbers, strings, bools; None is left out)
        against the scalar tags ``metrics``, whose last value it shows. Written into this run's own event file
        (``add_hparams`` would open a second run folder)."""
        from torch.utils.tensorboard.summary import hparams

        experiment, start, end = hparams(dict(params), dict.fromkeys(metrics, 0.0))
        for summary in (experiment, start, end):
            self.writer.file_writer.add_summary(summary)

    def close(self) -> None:
        self.writer.close()
