"""CIFAR-10 (32x32 RGB, 10 classes, 50k train / 10k test) from the python batches in torchvision's layout.

torchvision downloads and extracts the archive; we read the batches ourselves, straight into one
preallocated NCHW uint8 tensor (the batches already store each image channel-major), so loading holds the
images once: torchvision's reader stacks them (2x) and hands out an NHWC view that would need another copy.
The batches are pickles: they are read with an unpickler that builds only numpy arrays, lists, dicts and
strings, and their md5 (torchvision's list) is checked the first time each file is seen (fingerprint.py).
"""
from __future__ import annotations

import codecs
import pickle
import struct
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from compressbench.data.fetch import download_guard, require_files
from compressbench.data.fingerprint import file_checksums, files_digest
from compressbench.data.registry import CHECKS, DATASETS
from compressbench.data.split import DataBundle, Split, assemble, read_options

DEFAULTS: dict[str, Any] = {"download": True, "augment": {"crop_padding": 4, "flip": True}}
TRAIN = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5")
FILES = (*TRAIN, "test_batch", "batches.meta")
URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
PIXELS = 3 * 32 * 32
FOLDER = "cifar-10-batches-py"  # torchvision's CIFAR10.base_folder
HOW = (f"unpack {URL} into paths.data_dir (it holds {FOLDER}/: data_batch_1..5, test_batch, batches.meta), "
       f"or use dataset=cifar10_jpeg for CIFAR-10 as an unpacked JPEG tree (<root>/train/<class>/*.jpg)")


@CHECKS.register("cifar10")
def check_cifar10(cfg: Mapping[str, Any], data_dir: Path, files: bool) -> None:
    opts = read_options(cfg, DEFAULTS, "cifar10")
    if files:
        require_files("cifar10", [data_dir / FOLDER / f for f in FILES], data_dir / FOLDER, opts["download"], HOW)


@DATASETS.register("cifar10")
def load_cifar10(cfg: Mapping[str, Any], data_dir: Path, cache_dir: Path) -> DataBundle:
    """Reads ``data_dir/cifar-10-batches-py/`` (torchvision's layout), downloading it when allowed."""
    from torchvision.datasets import CIFAR10

    opts = read_options(cfg, DEFAULTS, "cifar10")
    where = data_dir / CIFAR10.base_folder
    files = [where / f for f in FILES]
    require_files("cifar10", files, where, opts["download"], HOW)
    md5 = {**dict(CIFAR10.train_list + CIFAR10.test_list), CIFAR10.meta["filename"]: CIFAR10.meta["md5"]}
    with download_guard("cifar10", data_dir, opts["download"], where, HOW):
        if opts["download"] and not all(f.is_file() for f in files):
            CIFAR10(str(data_dir), train=False, download=True)  # fetches every batch, reads only the test one
        digest = files_digest(file_checksums(files, cache_dir, on_new=lambda p: _check_md5(p, md5.get(p.name))))
    names = [str(n) for n in _unpickle(where / "batches.meta")["label_names"]]
    train, test = read_batches([where / f for f in TRAIN]), read_batches([where / "test_batch"])
    return assemble("cifar10", train, test, names, opts, source_digest=digest)


def read_batches(paths: Sequence[Path]) -> Split:
    """The batches' images (rows of 3072 channel-major bytes) and labels, in one array allocated once.

    The pixel payload of a batch is read from the file straight into its place; only pickles written by
    Python 3 (whose bytes arrive as text) take one batch-sized detour.
    """
    # A batch file holds at least PIXELS bytes per image, so this bounds the count; the rest is given back.
    images = np.empty((sum(p.stat().st_size for p in paths) // PIXELS, PIXELS), dtype=np.uint8)
    labels: list[int] = []
    for path in paths:
        start = len(labels)
        with open(path, "rb") as f:
            raw = _BatchReader(f, memoryview(images[start:].reshape(-1))).load()
        entry = _entry(raw, path)
        data, n = entry["data"], len(entry["labels"])
        if not (isinstance(data, _Array) and data.dtype in ("u1", "|u1", "uint8") and not data.fortran
                and data.shape == (n, PIXELS) and len(data.raw) == n * PIXELS):
            raise RuntimeError(f"{path} is not a CIFAR-10 batch (expected uint8 data [N, {PIXELS}] and N labels)")
        if not isinstance(data.raw, _Placed):  # the detour: bytes decoded from text
            images[start:start + n] = np.frombuffer(data.raw, np.uint8).reshape(n, PIXELS)
        labels.extend(int(v) for v in entry["labels"])
        del raw, entry, data
    images.resize((len(labels), PIXELS), refcheck=False)  # shrinks in place (realloc): nothing refers to it
    return Split(torch.from_numpy(images).view(-1, 3, 32, 32), torch.tensor(labels, dtype=torch.int64))


class _Placed:
    """Stands for a payload the reader wrote into the destination array (its length only)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n


class _Array:
    """A pickled ndarray as data, without numpy: shape, dtype code, order and its bytes (or where they went)."""

    def __init__(self, *args: Any) -> None:
        self.shape: tuple[int, ...] = ()
        self.dtype, self.fortran, self.raw = "", False, b""

    def __setstate__(self, state: tuple) -> None:  # ndarray's: (version, shape, dtype, is_fortran, data)
        _, shape, dtype, fortran, raw = state
        self.shape, self.fortran = tuple(int(v) for v in shape), bool(fortran)
        self.dtype = dtype.code if isinstance(dtype, _DType) else ""
        self.raw = raw.encode("latin1") if isinstance(raw, str) else raw


class _DType:
    def __init__(self, code: str | bytes, *args: Any) -> None:
        self.code = code.decode("latin1") if isinstance(code, bytes) else str(code)

    def __setstate__(self, state: tuple) -> None:  # byte order and flags: uint8 has none that matter
        pass


def _reconstruct(cls: Any, shape: Any, typecode: Any) -> _Array:
    return _Array()


class _BatchReader(pickle._Unpickler):
    """Reads what a CIFAR batch holds (arrays, containers, strings) and refuses every other global.

    Arrays become ``_Array`` records, never numpy objects built from the file. The pure-Python unpickler, so
    that one large string (the pixels) can be read into ``into`` instead of into a temporary bytes object.
    """

    GLOBALS: dict[tuple[str, str], Any] = {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct, ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy", "ndarray"): _Array, ("numpy", "dtype"): _DType, ("_codecs", "encode"): codecs.encode}
    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file: Any, into: memoryview) -> None:
        super().__init__(file, encoding="bytes")  # python-2 strings stay bytes
        self.into: memoryview | None = into

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.GLOBALS:
            raise pickle.UnpicklingError(f"a CIFAR batch does not need {module}.{name}; refusing to load it")
        return self.GLOBALS[module, name]

    def _counted(self, signed: bool) -> None:
        (n,) = struct.unpack("<i" if signed else "<I", self.read(4))
        if n < 0:
            raise pickle.UnpicklingError("negative byte count")
        if self.into is not None and n >= 1 << 16 and n <= len(self.into):
            if self.readinto(self.into[:n]) != n:
                raise pickle.UnpicklingError("truncated pickle")
            self.into = None  # one payload per batch
            self.append(_Placed(n))
        else:
            self.append(self.read(n))

    dispatch[pickle.BINSTRING[0]] = lambda self: self._counted(True)
    dispatch[pickle.BINBYTES[0]] = lambda self: self._counted(False)


def _entry(raw: Any, path: Path) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise RuntimeError(f"{path} is not a CIFAR-10 batch (not a dict)")
    return {(k.decode("latin1") if isinstance(k, bytes) else k): _text(v) for k, v in raw.items()}


def _unpickle(path: Path) -> dict[str, Any]:
    with open(path, "rb") as f:
        return _entry(_BatchReader(f, memoryview(bytearray(0))).load(), path)


def _text(value: Any) -> Any:
    if isinstance(value, list):
        return [v.decode("latin1") if isinstance(v, bytes) else v for v in value]
    return value


def _check_md5(path: Path, md5: str | None) -> None:
    import torchvision.datasets.cifar as tv_cifar  # looked up per call: tests stand in for the md5 check

    if md5 is not None and not tv_cifar.check_integrity(str(path), md5):
        raise RuntimeError(f"{path} does not match torchvision's md5 for CIFAR-10 (a partial or corrupt download)")
