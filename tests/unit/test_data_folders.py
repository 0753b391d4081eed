"""Image folders as users have them: split and flat layouts, bad folders, the decode cache and fingerprints.

Every tree is written here with PIL, in the real on-disk format (JPEG and PNG files under class folders).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from imagetrees import CLASSES, COLORS, write_class, write_split  # noqa: F401

from compressbench.data import decode, load_dataset


def load(root: Path, tmp_path: Path, **opts) -> object:
    cfg = {"name": "image_folder", "root": str(root), "image_size": 8, "augment": {"crop_padding": 1}, **opts}
    return load_dataset(cfg, tmp_path / "data", tmp_path / "cache")


def colours_match(split) -> bool:
    means = split.images.float().mean((2, 3))
    expected = torch.tensor([COLORS[int(y)] for y in split.labels], dtype=torch.float)
    return bool(torch.allclose(means, expected, atol=8))


# --- layouts -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["auto", "split"])
def test_split_layout_uses_the_official_test_split_and_carves_val_from_train(tmp_path: Path, layout: str):
    write_split(tmp_path / "ds", {"train": 10, "test": 4})
    b = load(tmp_path / "ds", tmp_path, layout=layout, val_fraction=0.2)
    info = json.loads(json.dumps(b.split_info))
    assert info["layout"] == "split" and info["test_source"] == "official" and info["val_source"] == "carved"
    assert info["sizes"] == {"train": 24, "val": 6, "test": 12} and info["source_size"] == 30
    assert info["test_indices"] is None and info["test_fraction"] is None and len(info["val_indices"]) == 6
    assert b.class_names == CLASSES and info["class_counts"]["test"] == [4, 4, 4]
    assert all(colours_match(s) for s in (b.train, b.val, b.test))
    assert info["fingerprint"] == b.fingerprint and len(b.fingerprint) == 64 and b.skipped_count == 0


@pytest.mark.parametrize("folder", ["val", "valid", "Validation"])
def test_an_official_val_folder_is_used_as_is(tmp_path: Path, folder: str):
    write_split(tmp_path / "ds", {"train": 6, folder: 2, "test": 3})
    b = load(tmp_path / "ds", tmp_path, val_fraction=0.5)  # ignored: there is an official val split
    info = b.split_info
    assert info["val_source"] == "official" and info["val_indices"] is None and info["val_fraction"] is None
    assert info["sizes"] == {"train": 18, "val": 6, "test": 9} and info["split_folders"]["val"] == folder


def test_split_layout_without_test_folder_carves_test_from_train(tmp_path: Path):
    write_split(tmp_path / "ds", {"train": 10})
    b = load(tmp_path / "ds", tmp_path, test_fraction=0.2)
    assert b.split_info["layout"] == "split" and b.split_info["test_source"] == "carved"
    assert len(b.test) == 6 and len(b.train) + len(b.val) + len(b.test) == 30


def test_flat_layout_keeps_the_carved_split(tmp_path: Path):
    for ci, name in enumerate(CLASSES):
        write_class(tmp_path / "flat" / name, COLORS[ci], 10)
    b = load(tmp_path / "flat", tmp_path)
    assert b.split_info["layout"] == "flat" and b.split_info["test_source"] == "carved"
    assert b.split_info["split_folders"] is None and len(b.test) == 6


def test_a_wrapper_folder_above_the_split_layout_is_descended(tmp_path: Path):
    write_split(tmp_path / "data" / "cifar_like", {"train": 4, "test": 2})
    b = load(tmp_path / "data", tmp_path)
    assert b.split_info["root"].endswith("cifar_like") and b.split_info["layout"] == "split"


# --- bad folders: a clear error (or warning) before any training -----------------------------------------

def test_forced_flat_on_split_folders_is_an_error_not_a_test_vs_train_task(tmp_path: Path):
    write_split(tmp_path / "ds", {"train": 3, "test": 2})
    with pytest.raises(ValueError, match=r"holds test/, train/: that is a split layout.*dataset.layout=split"):
        load(tmp_path / "ds", tmp_path, layout="flat")


def test_split_folders_next_to_other_folders(tmp_path: Path):
    write_split(tmp_path / "ds", {"train": 3, "test": 2})
    write_class(tmp_path / "ds" / "extras" / "x", COLORS[0], 2)
    with pytest.raises(ValueError, match="dataset.layout=split"):
        load(tmp_path / "ds", tmp_path)  # auto: not silently flat
    with pytest.warns(UserWarning, match="ignoring folder.*extras"):
        b = load(tmp_path / "ds", tmp_path, layout="split")
    assert b.split_info["layout"] == "split" and b.num_classes == 3


def test_root_one_level_above_a_dataset_says_where_to_point(tmp_path: Path):
    write_split(tmp_path / "all" / "cifar_like", {"train": 3, "test": 2})
    write_class(tmp_path / "all" / "photos" / "a", COLORS[0], 2)
    with pytest.raises(ValueError, match=r"cifar_like holds .*looks like a dataset of its own; point dataset.root"):
        load(tmp_path / "all", tmp_path)


def test_layout_split_without_train_folder(tmp_path: Path):
    for ci, name in enumerate(CLASSES):
        write_class(tmp_path / "flat" / name, COLORS[ci], 3)
    with pytest.raises(FileNotFoundError, match=r"dataset.layout=split but .* has no train/ folder"):
        load(tmp_path / "flat", tmp_path, layout="split")
    with pytest.raises(ValueError, match="dataset.layout='grid': must be one of auto, split, flat"):
        load(tmp_path / "flat", tmp_path, layout="grid")
    write_class(tmp_path / "loose" / "train", COLORS[0], 2)  # images right in train/: no class folders
    write_class(tmp_path / "loose" / "test" / "a", COLORS[0], 2)
    with pytest.raises(FileNotFoundError, match=r"train holds no class folders"):
        load(tmp_path / "loose", tmp_path)


def test_class_sets_of_the_splits_must_match(tmp_path: Path):
    write_split(tmp_path / "ds", {"train": 3})
    write_split(tmp_path / "ds", {"test": 2}, classes=["cat", "dog", "cow"])
    with pytest.raises(ValueError, match=r"test/ lacks fish; test/ has cow that train/ lacks"):
        load(tmp_path / "ds", tmp_path)


def test_an_empty_class_folder_is_an_error(tmp_path: Path):
    write_split(tmp_path / "ds", {"train": 3, "test": 2})
    for f in (tmp_path / "ds" / "test" / "dog").iterdir():
        f.unlink()
    with pytest.raises(FileNotFoundError, match=r"class folder\(s\) 'dog' under .*test hold no images"):
        load(tmp_path / "ds", tmp_path)


def test_two_folders_for_one_split(tmp_path: Path):
    write_split(tmp_path / "ds", {"train": 3, "val": 1, "valid": 1})
    with pytest.raises(ValueError, match="more than one folder for a split.*val, valid"):
        load(tmp_path / "ds", tmp_path)


def test_unreadable_images_are_listed_skipped_and_counted(tmp_path: Path):
    write_split(tmp_path / "ds", {"train": 4, "test": 2})
    (tmp_path / "ds" / "train" / "cat" / "broken.jpg").write_bytes(b"not an image")
    (tmp_path / "ds" / "test" / "fish" / "empty.png").write_bytes(b"")
    for _ in range(2):  # the second load comes from the cache and must still say so
        with pytest.warns(UserWarning, match=r"skipped 2 unreadable image file\(s\).*broken.jpg"):
            b = load(tmp_path / "ds", tmp_path)
        assert b.skipped_count == 2 == b.split_info["skipped_count"]
        assert sorted(b.split_info["skipped_files"]) == [os.path.join("test", "fish", "empty.png"),
                                                         os.path.join("train", "cat", "broken.jpg")]
        assert len(b.train) + len(b.val) == 12 and len(b.test) == 6


def test_a_class_without_readable_training_images_is_an_error(tmp_path: Path):
    write_split(tmp_path / "ds", {"train": 2, "test": 1})
    for f in (tmp_path / "ds" / "train" / "dog").iterdir():
        f.write_bytes(b"garbage")
    with pytest.warns(UserWarning), pytest.raises(FileNotFoundError, match="'dog' .*no readable training images"):
        load(tmp_path / "ds", tmp_path)


# --- decoding and its cache ----------------------------------------------------------------------------

def tree_state(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


def test_the_decode_cache_stays_out_of_the_data_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    write_split(tmp_path / "ds", {"train": 3, "test": 2})
    before = tree_state(tmp_path / "ds")
    first = load(tmp_path / "ds", tmp_path)
    assert tree_state(tmp_path / "ds") == before
    assert list((tmp_path / "cache" / "data").glob("*_8.pt")) and not (tmp_path / "data").exists()

    def fail(path: str, size: int, *limit: int) -> np.ndarray:
        raise AssertionError("decoded again although the cache is valid")

    monkeypatch.setattr(decode, "decode_image", fail)
    again = load(tmp_path / "ds", tmp_path)
    assert torch.equal(again.train.images, first.train.images) and again.fingerprint == first.fingerprint


def test_same_size_images_are_not_resampled(tmp_path: Path):
    from PIL import Image

    rng = np.random.default_rng(0)
    pixels = {}
    for name in CLASSES:
        (tmp_path / "ds" / name).mkdir(parents=True)
        for i in range(4):
            arr = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
            Image.fromarray(arr).save(tmp_path / "ds" / name / f"{i}.png")  # lossless: pixels must survive
            pixels[arr.tobytes()] = name
    b = load(tmp_path / "ds", tmp_path, image_size=16)
    for split in (b.train, b.val, b.test):
        for img, label in zip(split.images, split.labels, strict=True):
            assert pixels.get(img.permute(1, 2, 0).numpy().tobytes()) == b.class_names[int(label)]


def test_parallel_decoding_equals_serial(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    write_split(tmp_path / "ds", {"train": 6, "test": 2})
    (tmp_path / "ds" / "train" / "dog" / "broken.jpg").write_bytes(b"nope")
    paths = sorted(str(p) for p in (tmp_path / "ds").rglob("*.*"))
    serial, idx_s, err_s = decode.decode_files(paths, 8, workers=1)
    for mode in ("process", "thread"):
        monkeypatch.setattr(decode, "CHUNK", 5)  # several chunks, one of them with the broken file
        images, idx, errors = decode.decode_files(paths, 8, workers=2, mode=mode)
        assert torch.equal(images, serial) and np.array_equal(idx, idx_s) and len(errors) == len(err_s) == 1
    assert len(serial) == len(paths) - 1 and serial.untyped_storage().nbytes() == serial.numel()  # shrunk


# --- fingerprints --------------------------------------------------------------------------------------

def fingerprint_in_subprocess(root: Path, tmp_path: Path) -> str:
    code = ("import sys; from compressbench.data import load_dataset; "
            "print(load_dataset({'name': 'image_folder', 'root': sys.argv[1], 'image_size': 8, "
            "'augment': {'crop_padding': 1}}, sys.argv[2], sys.argv[3]).fingerprint)")
    env = {**os.environ, "PYTHONHASHSEED": "random"}
    out = subprocess.run([sys.executable, "-c", code, str(root), str(tmp_path / "data"), str(tmp_path / "cache2")],
                         capture_output=True, text=True, env=env, check=True)
    return out.stdout.strip().splitlines()[-1]


def test_fingerprint_is_stable_across_reloads_processes_and_copies(tmp_path: Path):
    write_split(tmp_path / "ds", {"train": 5, "test": 2})
    fp = load(tmp_path / "ds", tmp_path).fingerprint
    assert load(tmp_path / "ds", tmp_path).fingerprint == fp
    assert fingerprint_in_subprocess(tmp_path / "ds", tmp_path) == fp
    shutil.copytree(tmp_path / "ds", tmp_path / "elsewhere" / "ds")  # copy2 keeps mtimes, as tar extraction does
    assert load(tmp_path / "elsewhere" / "ds", tmp_path).fingerprint == fp


def test_fingerprint_changes_with_the_data_and_the_split(tmp_path: Path):
    write_split(tmp_path / "ds", {"train": 5, "test": 2})
    seen = {load(tmp_path / "ds", tmp_path).fingerprint}

    def changed(**opts) -> bool:
        fp = load(tmp_path / "ds", tmp_path, **opts).fingerprint
        new = fp not in seen
        seen.add(fp)
        return new

    cat, dog = tmp_path / "ds" / "train" / "cat", tmp_path / "ds" / "train" / "dog"
    os.replace(cat / "1.jpg", dog / "moved.jpg")  # same bytes and mtime, another class
    assert changed()
    (dog / "moved.jpg").unlink()
    assert changed()
    os.utime(dog / "1001.jpg", ns=(0, 10**18))  # touched: an edit that kept the size
    assert changed()
    assert changed(split_seed=1) and changed(image_size=12) and changed(val_fraction=0.3)
    assert not changed(split_seed=1)  # the same data and split again


def test_torchvision_format_fingerprint_hashes_files_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from test_data import write_mnist

    from compressbench.data import fingerprint

    write_mnist(tmp_path)
    cfg = {"name": "mnist", "download": False}
    fp = load_dataset(cfg, tmp_path, tmp_path / "cache").fingerprint
    record = json.loads((tmp_path / "cache" / "data" / fingerprint.CHECKSUMS).read_text())
    assert len(record) == 4 and all(len(v["sha256"]) == 64 for v in record.values())

    def no_hashing(path: Path) -> str:
        raise AssertionError(f"{path} hashed again although size and mtime are unchanged")

    monkeypatch.setattr(fingerprint, "file_sha256", no_hashing)
    assert load_dataset(cfg, tmp_path, tmp_path / "cache").fingerprint == fp
    monkeypatch.undo()
    labels = tmp_path / "MNIST" / "raw" / "train-labels-idx1-ubyte"
    data = bytearray(labels.read_bytes())
    data[-1] = (data[-1] + 1) % 10  # one label changed, the file keeps its size
    labels.write_bytes(bytes(data))
    assert load_dataset(cfg, tmp_path, tmp_path / "cache").fingerprint != fp


def test_an_unwritable_cache_dir_warns_and_still_loads(tmp_path: Path):
    write_split(tmp_path / "ds", {"train": 3, "test": 2})
    (tmp_path / "cache").write_text("a file where the cache dir should be")
    with pytest.warns(UserWarning, match="cannot cache the decoded images.*paths.cache_dir"):
        b = load(tmp_path / "ds", tmp_path)
    assert len(b.train) + len(b.val) == 9 and b.split_info["layout"] == "split"
