"""Data traps that used to run silently (issue 25): a root at train/, upsampled images, an undocumented dataset.

Every tree is written here with PIL in the real on-disk format (PNG and JPEG files under class folders).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from imagetrees import CLASSES, COLORS, write_split

from compressbench.data import DATASETS, check_dataset, load_dataset

README = Path(__file__).resolve().parents[2] / "README.md"


def load(root: Path, tmp_path: Path, **opts) -> object:
    cfg = {"name": "image_folder", "root": str(root), "augment": {"crop_padding": 1}, **opts}
    return load_dataset(cfg, tmp_path / "data", tmp_path / "cache")


def write_square(root: Path, side: int, counts: dict[str, int]) -> None:
    """``root/<split>/<class>/<i>.(png|jpg)``: ``side`` x ``side`` images, as CIFAR's JPEG trees are."""
    from PIL import Image

    for split, n in counts.items():
        for ci, name in enumerate(CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                img = Image.fromarray(np.full((side, side, 3), COLORS[ci], np.uint8))
                img.save(folder / (f"{i}.jpg" if i % 2 else f"{i}.png"))


# --- a root at train/ of a split dataset ------------------------------------------------------------------

@pytest.mark.parametrize("train", ["train", "training"])
def test_a_root_at_train_of_a_split_dataset_is_refused_saying_where_to_point(tmp_path: Path, train: str):
    write_split(tmp_path / "cifar", {train: 4, "test": 2})
    root = tmp_path / "cifar" / train
    expected = rf"{train}/ folder of a split dataset .*test/ with the same class folders.*point dataset.root at " \
               rf".*cifar \(or set dataset.layout=flat"
    with pytest.raises(ValueError, match=expected):  # before any image is read
        check_dataset({"name": "image_folder", "root": str(root)}, tmp_path / "data")
    with pytest.raises(ValueError, match=expected):
        load(root, tmp_path, image_size=8)
    parent = load(tmp_path / "cifar", tmp_path, image_size=8)  # what the message says to do
    assert parent.split_info["layout"] == "split" and parent.split_info["test_source"] == "official"


def test_layout_flat_forces_a_train_folder_and_unrelated_train_folders_load(tmp_path: Path):
    write_split(tmp_path / "cifar", {"train": 4, "test": 2})
    forced = load(tmp_path / "cifar" / "train", tmp_path, image_size=8, layout="flat")
    assert forced.split_info["test_source"] == "carved" and forced.num_classes == 3
    write_split(tmp_path / "other", {"train": 4})  # no sibling test/: nothing is ignored
    write_split(tmp_path / "other", {"test": 2}, classes=["x", "y"])  # a sibling with other classes: not its split
    alone = load(tmp_path / "other" / "train", tmp_path, image_size=8)
    assert alone.split_info["layout"] == "flat" and alone.num_classes == 3


# --- image size: the images' own, and a word when they are resampled --------------------------------------

def test_image_size_defaults_to_the_images_own_size(tmp_path: Path):
    write_square(tmp_path / "c", 32, {"train": 4, "test": 2})
    b = load(tmp_path / "c", tmp_path)  # image_folder's default image_size (null)
    assert b.image_size == 32 and tuple(b.train.images.shape[1:]) == (3, 32, 32)
    info = b.split_info
    assert info["source_image_size"] == "32x32" and info["resampled"] == "none"
    assert info["source_sizes"] == {"32x32": 18} and info["image_size_chosen"] == "auto"
    again = load(tmp_path / "c", tmp_path)  # the headers' sizes come from the cache: same answer
    assert again.image_size == 32 and again.fingerprint == b.fingerprint


def test_upsampling_is_said_in_a_warning_and_split_info(tmp_path: Path):
    write_square(tmp_path / "c", 16, {"train": 4, "test": 2})
    with pytest.warns(UserWarning, match=r"upsampling 18 of 18 images .*\(16x16\) to 32x32 \(dataset.image_size="
                                         r"32\).*set dataset.image_size=16 to keep them as they are"):
        b = load(tmp_path / "c", tmp_path, image_size=32)
    assert b.image_size == 32 and b.split_info["resampled"] == "upsampled"
    assert b.split_info["source_image_size"] == "16x16" and b.split_info["image_size_chosen"] == "given"


def test_mixed_sizes_resolve_to_64_and_say_they_were_upsampled(tmp_path: Path):
    write_split(tmp_path / "m", {"train": 2, "test": 1})  # 20..28 x 14..16 px, mixed
    with pytest.warns(UserWarning, match=r"upsampling 9 of 9 images .*\(20x14\.\.2\dx16\) to 64x64"):
        b = load(tmp_path / "m", tmp_path)
    assert b.image_size == 64 and b.split_info["resampled"] == "upsampled"


def test_fixed_size_datasets_keep_their_image_size(tmp_path: Path):
    write_square(tmp_path / "data" / "cifar10_jpeg", 16, {"train": 4, "test": 2})
    cfg = {"name": "cifar10_jpeg", "expected_classes": 3, "augment": {"crop_padding": 1}}
    with pytest.warns(UserWarning, match="upsampling"):
        b = load_dataset(cfg, tmp_path / "data", tmp_path / "cache")
    assert b.image_size == 32  # cifar10_jpeg's default stays 32 (and so do its cache keys)
    with pytest.raises(ValueError, match=r"dataset.image_size='big': must be an integer >= 8 or null"):
        load(tmp_path / "data" / "cifar10_jpeg", tmp_path, image_size="big")


def test_the_row_names_the_source_image_size(tmp_path: Path):
    import compressbench

    write_square(tmp_path / "c", 16, {"train": 4, "test": 2})
    table = compressbench.run(overrides=[
        "dataset=image_folder", f"dataset.root={tmp_path / 'c'}", "dataset.augment.crop_padding=1",
        "chain=[train]", "train.epochs=0", "measure.latency=false", "runtime.progress=false",
        f"paths.cache_dir={tmp_path / 'cache'}"], output_dir=tmp_path / "run")
    row = table.iloc[0]
    assert row["image_size"] == 16 and row["source_image_size"] == "16x16"


# --- the documented datasets ------------------------------------------------------------------------------

def test_every_dataset_is_in_the_readme_table():
    section = README.read_text().split("## Datasets", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `(\w+)`", section, re.M))
    # `datasets` is what compressbench.run(data=...) sets; nobody names it on the command line
    assert set(DATASETS.names()) - {"datasets"} <= listed


def test_the_offline_cifar_error_points_at_the_jpeg_tree(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="dataset=cifar10_jpeg"):
        check_dataset({"name": "cifar10", "download": False}, tmp_path / "data")
