"""CIFAR-10's python batches: Python-2 pickles (the real files) and Python-3 ones read without numpy objects or
foreign globals; torchvision's md5 checked once per file version."""
from __future__ import annotations

import io
import os
import pickle
import struct
from pathlib import Path

import pytest
import torch

from compressbench.data import load_dataset
from compressbench.data.cifar import FILES, read_batches

NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


class Py2Pickler(pickle._Pickler):
    """Pickles as Python 2's cPickle did (protocol 2): every str and bytes as a BINSTRING, numpy 1.x names."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2str(self, obj: str | bytes) -> None:
        data = obj.encode("latin1") if isinstance(obj, str) else bytes(obj)
        op = pickle.SHORT_BINSTRING + bytes([len(data)]) if len(data) < 256 else \
            pickle.BINSTRING + struct.pack("<i", len(data))
        self.write(op + data)
        self.memoize(obj)

    dispatch[str] = save_py2str
    dispatch[bytes] = save_py2str


def py2_dumps(obj: object) -> bytes:
    buf = io.BytesIO()
    Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue().replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")


def write_py2_cifar(data_dir: Path, per_batch: int = 12, n_test: int = 8) -> dict[str, torch.Tensor]:
    folder = data_dir / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    g = torch.Generator().manual_seed(0)
    out = {"train": torch.randint(0, 256, (5 * per_batch, 3, 32, 32), dtype=torch.uint8, generator=g),
           "test": torch.randint(0, 256, (n_test, 3, 32, 32), dtype=torch.uint8, generator=g)}
    out["train_y"], out["test_y"] = torch.arange(5 * per_batch) % 10, torch.arange(n_test) % 10
    for name, x, y in [(f"data_batch_{b + 1}", out["train"][b * per_batch:(b + 1) * per_batch],
                        out["train_y"][b * per_batch:(b + 1) * per_batch]) for b in range(5)] + \
            [("test_batch", out["test"], out["test_y"])]:
        entry = {"batch_label": name, "labels": y.tolist(), "data": x.reshape(len(x), -1).numpy(),
                 "filenames": [f"{i}.png" for i in range(len(x))]}
        (folder / name).write_bytes(py2_dumps(entry))
    (folder / "batches.meta").write_bytes(py2_dumps({"label_names": NAMES, "num_vis": 3072}))
    return out


@pytest.fixture
def md5_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    import torchvision.datasets.cifar as tv_cifar

    calls: list[str] = []

    def check(fpath: str, md5: str | None = None) -> bool:
        calls.append(os.path.basename(fpath))
        return os.path.isfile(fpath)

    monkeypatch.setattr(tv_cifar, "check_integrity", check)
    return calls


def test_python2_batches_round_trip(tmp_path: Path, md5_calls: list[str]):
    written = write_py2_cifar(tmp_path)
    b = load_dataset({"name": "cifar10", "download": False}, tmp_path, tmp_path / "cache")
    assert b.class_names == NAMES and torch.equal(b.test.images, written["test"])
    assert torch.equal(b.test.labels, written["test_y"]) and len(b.train) + len(b.val) == 60
    val_idx = torch.tensor(b.split_info["val_indices"])
    assert torch.equal(b.val.images, written["train"][val_idx])


def test_batches_are_read_into_one_array(tmp_path: Path):
    written = write_py2_cifar(tmp_path, per_batch=40)
    split = read_batches([tmp_path / "cifar-10-batches-py" / f"data_batch_{i}" for i in range(1, 6)])
    assert torch.equal(split.images, written["train"]) and torch.equal(split.labels, written["train_y"])
    assert split.images.untyped_storage().nbytes() == split.images.numel()  # the over-allocation given back


def test_a_batch_with_a_foreign_global_is_refused(tmp_path: Path, md5_calls: list[str]):
    write_py2_cifar(tmp_path)
    evil = pickle.dumps({"data": os.getcwd, "labels": []}, protocol=2)  # a global no CIFAR batch needs
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(evil)
    with pytest.raises(pickle.UnpicklingError, match=r"does not need \w+\.getcwd; refusing"):
        load_dataset({"name": "cifar10", "download": False}, tmp_path, tmp_path / "cache")


def test_md5_is_checked_once_per_file_version(tmp_path: Path, md5_calls: list[str], monkeypatch: pytest.MonkeyPatch):
    import torchvision.datasets.cifar as tv_cifar

    write_py2_cifar(tmp_path)
    cfg = {"name": "cifar10", "download": False}
    first = load_dataset(cfg, tmp_path, tmp_path / "cache")
    assert sorted(md5_calls) == sorted(FILES)
    md5_calls.clear()
    assert load_dataset(cfg, tmp_path, tmp_path / "cache").fingerprint == first.fingerprint and md5_calls == []
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_2"
    batch.write_bytes(batch.read_bytes())  # rewritten: a new mtime, so checked (and hashed) again
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda fpath, md5=None: False)
    with pytest.raises(RuntimeError, match=r"failed torchvision's checks.*data_batch_2 does not match"):
        load_dataset(cfg, tmp_path, tmp_path / "cache")
