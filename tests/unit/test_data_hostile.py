"""Image folders someone else made: links out of the root, link loops, duplicates, hidden classes, names that are
not UTF-8, and decompression bombs. Each tree is written here (tests/imagetrees.py), in the real on-disk format."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from imagetrees import CLASSES, COLORS, png_claiming, write_class, write_split

from compressbench.data import decode, load_dataset
from compressbench.data.fingerprint import listing_digest


def load(root: Path, tmp_path: Path, **opts) -> object:
    cfg = {"name": "image_folder", "root": str(root), "image_size": 8, "augment": {"crop_padding": 1}, **opts}
    return load_dataset(cfg, tmp_path / "data", tmp_path / "cache")


def flat(root: Path, n: int = 4) -> Path:
    for ci, name in enumerate(CLASSES):
        write_class(root / name, COLORS[ci], n)
    return root


def total(b) -> int:
    return len(b.train) + len(b.val) + len(b.test)


# --- links: never leave the root, each real file once -------------------------------------------------------

def test_links_leading_outside_the_root_are_skipped_with_a_warning(tmp_path: Path):
    root = flat(tmp_path / "ds")
    write_class(tmp_path / "outside" / "pool", COLORS[3], 10)
    (root / "cat" / "more").symlink_to(tmp_path / "outside" / "pool")  # a folder link inside a class
    (root / "bird").symlink_to(tmp_path / "outside" / "pool")  # a class folder that is a link out
    (root / "dog" / "x.png").symlink_to(tmp_path / "outside" / "pool" / "0.png")  # a file link out
    with pytest.warns(UserWarning, match=r"skipped 3 symlink\(s\) leading outside the root: bird, cat/more, dog/x"):
        b = load(root, tmp_path)
    assert total(b) == 12 and b.class_names == CLASSES  # torchvision's walk: 23 images, a class 'bird'
    assert b.split_info["not_listed"]["outside_root"] == ["bird", "cat/more", "dog/x.png"]


def test_a_folder_link_loop_is_skipped_and_each_file_counts_once(tmp_path: Path):
    root = flat(tmp_path / "ds")
    (root / "cat" / "again").symlink_to(".")  # torchvision's walk multiplies the class ~40x
    (root / "dog" / "sub").mkdir()
    (root / "dog" / "sub" / "up").symlink_to("..")
    with pytest.warns(UserWarning, match=r"2 symlink loop\(s\): cat/again, dog/sub/up"):
        b = load(root, tmp_path)
    assert total(b) == 12 and b.split_info["class_counts"]["train"] == [3, 3, 3]


def test_file_link_loops_dangling_links_and_duplicates_are_skipped(tmp_path: Path):
    root = tmp_path / "ds"
    write_split(root, {"train": 4, "test": 2})
    (root / "train" / "cat" / "loop.jpg").symlink_to("loop.jpg")  # "Too many levels of symbolic links"
    (root / "train" / "dog" / "gone.jpg").symlink_to("nowhere.jpg")
    (root / "train" / "fish" / "copy.png").symlink_to("../cat/0.png")  # the file is cat's (reached directly)
    os.link(root / "train" / "dog" / "1001.jpg", root / "test" / "dog" / "same.jpg")  # a hard link into test
    (root / "test" / "cat" / "seen.png").symlink_to("../../train/cat/2.png")  # the same image in test
    with pytest.warns(UserWarning) as caught:
        b = load(root, tmp_path)
    said = " ".join(str(w.message) for w in caught)
    assert "1 symlink loop(s): train/cat/loop.jpg" in said and "1 dangling symlink(s): train/dog/gone.jpg" in said
    assert "3 link(s) or hard link(s) to files already listed" in said
    assert b.split_info["not_listed"]["duplicates"] == ["test/cat/seen.png", "test/dog/same.jpg",
                                                        "train/fish/copy.png"]
    assert len(b.test) == 6 and len(b.train) + len(b.val) == 12 and b.skipped_count == 0


def test_links_inside_the_root_are_followed(tmp_path: Path):
    root = flat(tmp_path / "ds")
    write_class(root / ".pool", COLORS[0], 3, start=50)  # hidden, so no class (named in the warning)
    (root / "cat" / "extra").symlink_to(root / ".pool")
    with pytest.warns(UserWarning, match=r"1 hidden folder\(s\) holding images .*: \.pool"):
        b = load(root, tmp_path)
    assert total(b) == 15 and b.split_info["class_counts"]["train"][0] > b.split_info["class_counts"]["train"][1]


def test_the_walk_lists_what_torchvision_lists_on_an_ordinary_tree(tmp_path: Path):
    from torchvision.datasets.folder import IMG_EXTENSIONS, make_dataset

    from compressbench.data.walk import FolderWalk

    root = tmp_path / "ds"
    write_split(root, {"train": 4}, ["cat", "Dog", "fi sh", "ünï"])
    write_class(root / "train" / "cat" / "sub" / "deeper", COLORS[0], 3)
    write_class(root / "train" / "cat" / "Sub2", COLORS[0], 2)
    (root / "train" / "cat" / "UPPER.JPG").write_bytes((root / "train" / "cat" / "1.jpg").read_bytes())
    classes = sorted(p.name for p in (root / "train").iterdir())
    [ours] = FolderWalk(root, IMG_EXTENSIONS).images([root / "train"], classes)
    theirs = make_dataset(str(root / "train"), {c: i for i, c in enumerate(classes)}, extensions=IMG_EXTENSIONS)
    assert [(p, label) for p, label, _, _ in ours] == theirs and len(theirs) == 22


def test_a_hidden_class_folder_with_images_is_named_and_counted(tmp_path: Path):
    root = flat(tmp_path / "ds")
    write_class(root / "..cat", COLORS[4], 3)
    write_class(root / ".dog", COLORS[5], 3)
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")  # hidden, no images: skipped silently
    with pytest.warns(UserWarning, match=r"skipped 2 hidden folder\(s\) holding images .*: \.\.cat, \.dog \("):
        b = load(root, tmp_path)
    assert b.class_names == CLASSES and b.split_info["not_listed"]["hidden_folders"] == ["..cat", ".dog"]


# --- names that are not UTF-8 ----------------------------------------------------------------------------

def test_names_that_are_not_utf8_load_and_fingerprint(tmp_path: Path):
    root = flat(tmp_path / "ds")
    odd_class = os.fsdecode(b"caf\xe9")  # Latin-1 bytes: a surrogate escape in Python
    write_class(root / odd_class, COLORS[3], 4)
    os.replace(root / "cat" / "1.jpg", root / "cat" / os.fsdecode(b"\xff\xfe photo.jpg"))
    b = load(root, tmp_path)
    assert odd_class in b.class_names and total(b) == 16 and len(b.fingerprint) == 64
    json.dumps(b.split_info)  # split.json is written from it
    assert load(root, tmp_path).fingerprint == b.fingerprint  # the decode cache took the odd names too


def test_the_fingerprint_of_utf8_names_is_unchanged():
    rows = [("cat/0.png", 0, 10, 5), ("Dög/ü 1.JPG", 1, 2**40, 1700000000123456789)]
    # The digest main computed before names became bytes: every stage key of an image folder rests on it.
    assert listing_digest(rows) == "c93881835f089bdaaec3fdbc9c861aacad8875902a484060e864ed14cadee87b"


# --- decompression bombs: skipped by their header, counted like unreadable files ---------------------------

def test_images_over_the_pixel_limit_are_skipped_before_decoding(tmp_path: Path):
    root = flat(tmp_path / "ds")
    png_claiming(root / "cat" / "bomb.png", 20000, 20000)  # PIL: DecompressionBombError
    png_claiming(root / "dog" / "huge.png", 12000, 12000)  # PIL: a warning, then 0.5 GB decoded
    for _ in range(2):  # the second load comes from the decode cache and must still say so
        with pytest.warns(UserWarning, match=r"skipped 2 unreadable .*2 of them over dataset.max_image_pixels"):
            b = load(root, tmp_path)
        assert b.skipped_count == 2 and total(b) == 12
        assert sorted(b.split_info["skipped_files"]) == ["cat/bomb.png", "dog/huge.png"]


def test_the_pixel_limit_is_an_option(tmp_path: Path):
    from PIL import Image

    root = flat(tmp_path / "ds")
    Image.new("RGB", (40, 30), COLORS[1]).save(root / "dog" / "big.png")  # 1200 pixels
    with pytest.warns(UserWarning, match=r"1 of them over dataset.max_image_pixels=1000"):
        b = load(root, tmp_path, max_image_pixels=1000)
    assert b.split_info["skipped_files"] == ["dog/big.png"]
    assert total(load(root, tmp_path, max_image_pixels=1200)) == 13  # at the limit: kept
    with pytest.raises(ValueError, match=r"dataset.max_image_pixels=0: must be an integer >= 1"):
        load(root, tmp_path, max_image_pixels=0)


def test_decode_image_reads_only_the_header_of_a_large_image(tmp_path: Path):
    png_claiming(tmp_path / "huge.png", 12000, 12000)
    with pytest.raises(decode.TooLarge, match="12000x12000 is 144 megapixels"):
        decode.decode_image(str(tmp_path / "huge.png"), 8)
