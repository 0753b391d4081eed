"""Datasets and TensorLoader, offline: every loader reads small files the test writes in the real format."""
from __future__ import annotations

import json
import os
import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from compressbench.data import DATASETS, Augment, DataBundle, Split, decode, load_dataset
from compressbench.data.split import stratified_split
from compressbench.data.tensors import TensorLoader
from compressbench.infra.registry import UnknownNameError

DATASET_CONF = Path(__file__).resolve().parents[2] / "conf" / "dataset"
SEA_URL = "https://www.kaggle.com/datasets/vencerlanz09/sea-animals-image-dataste"


def rand_images(n: int, c: int = 3, s: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, c, s, s), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def balanced_labels(n: int, k: int = 10) -> torch.Tensor:
    return torch.arange(n) % k


@pytest.fixture
def md5_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    """Our tiny files cannot match torchvision's md5s: keep its existence check, skip only the checksum."""
    import torchvision.datasets.cifar as tv_cifar
    import torchvision.datasets.svhn as tv_svhn

    def exists(fpath: Any, md5: str | None = None) -> bool:
        return os.path.isfile(fpath)

    monkeypatch.setattr(tv_cifar, "check_integrity", exists)
    monkeypatch.setattr(tv_svhn, "check_integrity", exists)

    def no_network(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a test tried to download")

    monkeypatch.setattr(tv_cifar, "download_and_extract_archive", no_network)
    monkeypatch.setattr(tv_svhn, "download_url", no_network)


# --- writers of the real on-disk formats ---------------------------------------------------------------

def write_cifar(data_dir: Path, per_batch: int = 20, n_test: int = 30) -> dict[str, torch.Tensor]:
    folder = data_dir / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    train = rand_images(5 * per_batch, seed=1)
    train_y = balanced_labels(5 * per_batch)
    test, test_y = rand_images(n_test, seed=2), balanced_labels(n_test)

    def batch(path: Path, x: torch.Tensor, y: torch.Tensor) -> None:
        entry = {"batch_label": path.name, "labels": y.tolist(), "data": x.reshape(len(x), -1).numpy(),
                 "filenames": [f"{i}.png" for i in range(len(x))]}
        path.write_bytes(pickle.dumps(entry, protocol=2))

    for b in range(5):
        sl = slice(b * per_batch, (b + 1) * per_batch)
        batch(folder / f"data_batch_{b + 1}", train[sl], train_y[sl])
    batch(folder / "test_batch", test, test_y)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": names, "num_vis": 3072}, protocol=2))
    return {"train": train, "train_y": train_y, "test": test, "test_y": test_y}


def write_svhn(data_dir: Path, n_train: int = 60, n_test: int = 20) -> dict[str, torch.Tensor]:
    from scipy.io import savemat

    folder = data_dir / "svhn"
    folder.mkdir(parents=True)
    out = {}
    for split, n, seed in (("train", n_train, 3), ("test", n_test, 4)):
        x, y = rand_images(n, seed=seed), balanced_labels(n)
        svhn_y = np.where(y.numpy() == 0, 10, y.numpy()).astype(np.uint8).reshape(n, 1)  # SVHN: 10 means 0
        savemat(str(folder / f"{split}_32x32.mat"), {"X": x.permute(2, 3, 1, 0).numpy(), "y": svhn_y})
        out[split], out[f"{split}_y"] = x, y
    return out


def write_mnist(data_dir: Path, n_train: int = 60, n_test: int = 20) -> dict[str, torch.Tensor]:
    raw = data_dir / "MNIST" / "raw"
    raw.mkdir(parents=True)
    out = {}
    for prefix, key, n, seed in (("train", "train", n_train, 5), ("t10k", "test", n_test, 6)):
        x, y = rand_images(n, c=1, s=28, seed=seed)[:, 0], balanced_labels(n)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 0x0803, n, 28, 28) + x.numpy().tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 0x0801, n)
                                                           + y.numpy().astype(np.uint8).tobytes())
        out[key], out[f"{key}_y"] = x.unsqueeze(1), y
    return out


COLORS = [(220, 30, 30), (30, 200, 40), (40, 40, 210), (200, 200, 30)]


def write_tree(root: Path, classes: list[str], per_class: int = 5) -> None:
    """``root/<class>/<i>.png|jpg``: solid colour per class (cycling COLORS), mixed sizes and formats."""
    from PIL import Image

    for ci, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            size = (20 + 4 * i, 12 + 2 * ci)  # non-square, varied
            img = Image.new("RGB", size, COLORS[ci % len(COLORS)])
            img.save(root / name / (f"{i}.jpg" if i % 2 else f"{i}.png"))


# --- every registered dataset --------------------------------------------------------------------------

def prepare(name: str, data_dir: Path) -> dict[str, Any]:
    """The dataset's own YAML (download off), with its files written under data_dir."""
    cfg = OmegaConf.to_container(OmegaConf.load(DATASET_CONF / f"{name}.yaml"))
    assert isinstance(cfg, dict)
    if "download" in cfg:
        cfg["download"] = False
    {"cifar10": write_cifar, "svhn": write_svhn, "mnist": write_mnist}.get(name, lambda d: None)(data_dir)
    if name == "sea_animals":
        write_tree(data_dir / "sea_animals", [f"Class {i}" for i in range(23)], per_class=5)
        cfg["image_size"] = 16
    if name == "image_folder":
        write_tree(data_dir / "mine", ["Jelly Fish", "Sea Rays", "Turtle_Tortoise"], per_class=6)
        cfg.update(root=str(data_dir / "mine"), image_size=16)
    if name == "datasets":  # what compressbench.run(data=(train, test)) registers in the process
        from torch.utils.data import TensorDataset

        from compressbench.data.given import register_datasets

        y = torch.arange(40) % 4
        node = register_datasets(TensorDataset(torch.rand(40, 3, 8, 8), y), TensorDataset(torch.rand(12, 3, 8, 8), y[:12]))
        cfg.update(digest=node["digest"], label=node["label"])
    if name == "cifar10_jpeg":  # split layout: official test/, val carved from train/
        classes = [f"c{i}" for i in range(10)]
        write_tree(data_dir / "cifar10_jpeg" / "train", classes, per_class=5)
        write_tree(data_dir / "cifar10_jpeg" / "test", classes, per_class=2)
        cfg["image_size"] = 16
    return cfg


def test_every_registered_dataset_has_a_yaml():
    assert sorted(p.stem for p in DATASET_CONF.glob("*.yaml")) == DATASETS.names()


@pytest.mark.parametrize("name", DATASETS.names())
def test_dataset_bundle_invariants(name: str, tmp_path: Path, md5_skipped: None):
    cfg = prepare(name, tmp_path)
    b = load_dataset(cfg, tmp_path)
    assert isinstance(b, DataBundle) and b.name == name
    for s in (b.train, b.val, b.test):
        assert s.images.dtype == torch.uint8 and s.images.is_contiguous() and s.labels.dtype == torch.int64
        assert s.images.shape[1:] == (b.in_channels, b.image_size, b.image_size)
        assert 0 <= int(s.labels.min()) and int(s.labels.max()) < b.num_classes
    assert b.num_classes == len(b.class_names)
    assert set(b.train.labels.tolist()) == set(range(b.num_classes))
    assert b.augment == Augment(**cfg["augment"])
    # mean/std are those of the train split, in [0, 1] units
    x = b.train.images.double().div(255).transpose(0, 1).reshape(b.in_channels, -1)
    assert torch.allclose(torch.tensor(b.mean, dtype=torch.float64), x.mean(1), atol=1e-6)
    assert torch.allclose(torch.tensor(b.std, dtype=torch.float64), x.std(1, correction=0), atol=1e-4)
    info = json.loads(json.dumps(b.split_info))
    assert info["sizes"] == {"train": len(b.train), "val": len(b.val), "test": len(b.test)}
    assert [sum(v) for v in info["class_counts"].values()] == list(info["sizes"].values())
    carved = set(info["val_indices"]) | set(info["test_indices"] or [])
    assert len(carved) == len(b.val) + (len(b.test) if info["test_indices"] else 0)  # no overlap
    assert info["source_size"] == len(b.train) + len(carved)


# --- real formats: content and orientation survive -----------------------------------------------------

def source_order(b: DataBundle) -> tuple[torch.Tensor, torch.Tensor]:
    """Rebuild the source training set from train + val and the recorded val indices."""
    n = b.split_info["source_size"]
    val_idx = torch.tensor(b.split_info["val_indices"], dtype=torch.long)
    train_idx = torch.tensor(sorted(set(range(n)) - set(val_idx.tolist())), dtype=torch.long)
    images = torch.empty((n, *b.train.images.shape[1:]), dtype=torch.uint8)
    labels = torch.empty(n, dtype=torch.long)
    images[train_idx], labels[train_idx] = b.train.images, b.train.labels
    images[val_idx], labels[val_idx] = b.val.images, b.val.labels
    return images, labels


@pytest.mark.parametrize("name, writer", [("cifar10", write_cifar), ("svhn", write_svhn), ("mnist", write_mnist)])
def test_torchvision_formats_round_trip(name: str, writer: Any, tmp_path: Path, md5_skipped: None):
    written = writer(tmp_path)
    b = load_dataset({"name": name, "download": False}, tmp_path)
    assert torch.equal(b.test.images, written["test"]) and torch.equal(b.test.labels, written["test_y"])
    images, labels = source_order(b)
    assert torch.equal(images, written["train"]) and torch.equal(labels, written["train_y"])
    assert b.split_info["test_source"] == "official"


def test_download_true_with_files_present_locks_and_does_not_download(tmp_path: Path, md5_skipped: None,
                                                                     monkeypatch):
    import compressbench.data.fetch as fetch

    held = []
    real = fetch.file_lock

    def recording(path, what=""):
        held.append(Path(path))
        return real(path, what)

    monkeypatch.setattr(fetch, "file_lock", recording)
    write_cifar(tmp_path)
    b = load_dataset({"name": "cifar10", "download": True}, tmp_path)
    assert len(b.test) == 30 and held == [tmp_path / ".cifar10.lock"]
    assert not (tmp_path / ".cifar10.lock").exists()  # and the lock leaves no file behind


@pytest.mark.parametrize("name, where", [("cifar10", "cifar-10-batches-py"), ("svhn", "svhn"),
                                         ("mnist", "MNIST/raw")])
def test_missing_torchvision_data_says_what_to_do(name: str, where: str, tmp_path: Path):
    with pytest.raises(FileNotFoundError) as e:
        load_dataset({"name": name, "download": False}, tmp_path)
    msg = str(e.value)
    assert str(tmp_path / where) in msg and "dataset.download=true" in msg and "paths.data_dir" in msg


# --- digits and the stratified split -------------------------------------------------------------------

def test_digits_splits_are_stratified_disjoint_and_seeded():
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    b = load_dataset({"name": "digits"}, "unused")
    info = b.split_info
    assert len(b.train) + len(b.val) + len(b.test) == 1797 and b.image_size == 8 and b.in_channels == 1
    assert info["sizes"]["test"] == round(1797 * 0.2)
    val_idx, test_idx = np.array(info["val_indices"]), np.array(info["test_indices"])
    assert not set(val_idx) & set(test_idx)
    # images really are the sklearn ones at the recorded indices (0..16 scaled to 0..255)
    expected = torch.from_numpy(np.round(x[val_idx] * 255 / 16).reshape(-1, 1, 8, 8)).to(torch.uint8)
    assert torch.equal(b.val.images, expected) and torch.equal(b.val.labels, torch.from_numpy(y[val_idx]))
    totals = np.bincount(y, minlength=10)
    for split, frac in (("test", 0.2), ("val", 0.8 * 0.1)):
        counts = np.array(info["class_counts"][split])
        assert np.all(np.abs(counts - totals * frac) <= 1.5), (split, counts)
    again = load_dataset({"name": "digits"}, "unused")
    assert again.split_info["val_indices"] == info["val_indices"] and torch.equal(again.train.images, b.train.images)
    other = load_dataset({"name": "digits", "split_seed": 1}, "unused")
    assert other.split_info["val_indices"] != info["val_indices"]
    assert other.split_info["test_indices"] == info["test_indices"]  # the test set does not move with the seed


def test_digits_resize():
    b = load_dataset({"name": "digits", "image_size": 16}, "unused")
    assert b.train.images.shape[1:] == (1, 16, 16) and b.train.images.max() > 200


def test_stratified_split_helper():
    labels = np.repeat(np.arange(3), [50, 30, 20])
    keep, take = stratified_split(labels, 0.1, seed=7)
    assert len(take) == 10 and np.bincount(labels[take]).tolist() == [5, 3, 2]
    assert sorted(np.concatenate([keep, take]).tolist()) == list(range(100))
    assert np.array_equal(take, stratified_split(labels, 0.1, seed=7)[1])
    assert not np.array_equal(take, stratified_split(labels, 0.1, seed=8)[1])
    assert len(stratified_split(labels, 0.0, seed=0)[1]) == 0


@pytest.mark.parametrize("override, match", [
    ({"val_fraction": 0.7}, r"val_fraction=0.7: must be a number in \[0, 0.5\]"),
    ({"augment": {"crop_padding": -1}}, r"crop_padding=-1: must be an integer in \[0"),
    ({"image_size": 4}, r"image_size=4: must be an integer >= 8"),
    ({"test_fraction": 0.0}, r"test_fraction=0.0"),
    ({"val_fration": 0.1}, r"no option val_fration; its options: .*val_fraction"),
])
def test_bad_values_say_what_is_allowed(override: dict, match: str):
    with pytest.raises(ValueError, match=match):
        load_dataset({"name": "digits", **override}, "unused")


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(UnknownNameError, match="valid datasets: cifar10, cifar10_jpeg, datasets, digits"):
        load_dataset({"name": "imagenet"}, "unused")


# --- image folders -------------------------------------------------------------------------------------

def test_image_folder_nested_root_labels_and_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    classes = ["Jelly Fish", "Sea Rays", "Turtle_Tortoise"]
    write_tree(tmp_path / "mine" / "archive", classes, per_class=4)  # Kaggle zips nest one level
    (tmp_path / "mine" / "__MACOSX").mkdir()  # zip debris is not a class
    cfg = {"name": "image_folder", "root": str(tmp_path / "mine"), "image_size": 16, "val_fraction": 0.25}
    b = load_dataset(cfg, tmp_path)
    assert b.class_names == classes and b.split_info["root"].endswith("archive")
    for split in (b.train, b.val, b.test):
        for img, label in zip(split.images, split.labels, strict=True):  # each class keeps its colour
            colour = img.float().mean((1, 2))
            assert torch.allclose(colour, torch.tensor(COLORS[int(label)], dtype=torch.float), atol=8)
    # The decoded images are cached under the data cache (paths.cache_dir/data), never in the user's folder.
    assert not [p for p in (tmp_path / "mine").rglob("*") if p.name.startswith(".compressbench")]
    assert list((tmp_path / ".compressbench_cache").glob("*_16.pt"))

    def fail(path: str, size: int, *limit: int) -> np.ndarray:
        raise AssertionError("decoded again although the cache is valid")

    monkeypatch.setattr(decode, "decode_image", fail)
    again = load_dataset(cfg, tmp_path)
    assert torch.equal(again.train.images, b.train.images) and again.split_info == b.split_info
    from PIL import Image  # a new file changes the cache key, so decoding must run again

    Image.new("RGB", (9, 9)).save(tmp_path / "mine" / "archive" / "Sea Rays" / "new.png")
    with pytest.raises(AssertionError, match="decoded again"):
        load_dataset(cfg, tmp_path)


def test_image_folder_skips_unreadable_files(tmp_path: Path):
    write_tree(tmp_path / "f", ["a", "b"], per_class=5)
    (tmp_path / "f" / "a" / "broken.jpg").write_bytes(b"not an image")
    with pytest.warns(UserWarning, match="broken.jpg"):
        b = load_dataset({"name": "image_folder", "root": str(tmp_path / "f"), "image_size": 8}, tmp_path)
    assert len(b.train) + len(b.val) + len(b.test) == 10 and b.split_info["skipped_files"][0].endswith("broken.jpg")


def test_sea_animals_missing_root_says_where_to_get_it(tmp_path: Path):
    with pytest.raises(FileNotFoundError) as e:
        load_dataset({"name": "sea_animals"}, tmp_path)
    msg = str(e.value)
    for part in (str(tmp_path / "sea_animals"), "<root>/<class name>/<image>.jpg", "23", SEA_URL, "dataset.root=",
                 "paths.data_dir"):
        assert part in msg


def test_sea_animals_wrong_class_count_and_image_folder_needs_root(tmp_path: Path):
    write_tree(tmp_path / "sea_animals", ["Jelly Fish", "Seal"], per_class=3)
    with pytest.raises(ValueError, match="has 2 class folders .*expected 23"):
        load_dataset({"name": "sea_animals", "image_size": 8}, tmp_path)
    with pytest.raises(ValueError, match="dataset.root"):
        load_dataset({"name": "image_folder"}, tmp_path)


# --- TensorLoader --------------------------------------------------------------------------------------

def indexed_split(n: int, c: int = 3, s: int = 8) -> Split:
    """Random images whose label is their own index, so batches tell which samples they hold."""
    return Split(rand_images(n, c, s, seed=9), torch.arange(n))


RAW = {"mean": (0.0, 0.0, 0.0), "std": (1 / 255,) * 3}  # the identity normalisation: batches are raw pixels


def collect(loader: TensorLoader) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = zip(*loader, strict=True)
    return torch.cat(xs), torch.cat(ys)


def test_loader_shapes_dtypes_and_length():
    loader = TensorLoader(indexed_split(70), 32, **RAW, channels_last=True)
    batches = list(loader)
    assert len(loader) == len(batches) == 3 and [len(y) for _, y in batches] == [32, 32, 6]
    x, y = batches[0]
    assert x.dtype == torch.float32 and y.dtype == torch.int64 and x.shape == (32, 3, 8, 8)
    assert x.is_contiguous(memory_format=torch.channels_last)
    assert len(TensorLoader(indexed_split(70), 32, **RAW, drop_last=True)) == 2


def test_loader_normalises_train_split_to_zero_mean_unit_std():
    b = load_dataset({"name": "digits"}, "unused")
    x, _ = collect(TensorLoader(b.train, 128, mean=b.mean, std=b.std))
    assert abs(float(x.mean())) < 1e-4 and abs(float(x.std(correction=0)) - 1) < 1e-3


def test_loader_shuffle_is_seeded_per_epoch_and_covers_each_sample_once():
    aug = Augment(crop_padding=2, flip=True)

    def epoch(seed: int, e: int, global_seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        loader = TensorLoader(indexed_split(100), 16, **RAW, shuffle=True, augment=aug, seed=seed)
        loader.set_epoch(e)
        torch.manual_seed(global_seed)  # the global RNG must not matter
        return collect(loader)

    x0, y0 = epoch(0, 0, global_seed=1)
    x0b, y0b = epoch(0, 0, global_seed=2)
    assert torch.equal(x0, x0b) and torch.equal(y0, y0b)
    assert sorted(y0.tolist()) == list(range(100))
    assert not torch.equal(y0, epoch(0, 1)[1]) and not torch.equal(y0, epoch(1, 0)[1])
    dropped = TensorLoader(indexed_split(100), 16, **RAW, shuffle=True, drop_last=True)
    y_drop = collect(dropped)[1]
    assert len(y_drop) == 96 and len(set(y_drop.tolist())) == 96


@pytest.mark.parametrize("drop_last", [False, True])
def test_rank_sharding_covers_every_sample(drop_last: bool):
    shards = [collect(TensorLoader(indexed_split(101), 10, **RAW, shuffle=True, drop_last=drop_last, seed=3,
                                   rank=r, world_size=2))[1] for r in range(2)]
    loaders = [TensorLoader(indexed_split(101), 10, **RAW, drop_last=drop_last, rank=r, world_size=2)
               for r in range(2)]
    assert len(loaders[0]) == len(loaders[1])
    seen = torch.cat(shards).tolist()
    if drop_last:  # tail dropped: disjoint, 50 each
        assert len(seen) == 100 == len(set(seen))
    else:  # padded with the head: every sample, one of them twice
        assert set(seen) == set(range(101)) and len(seen) == 102


def shifted(img: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """``img`` moved by (dy, dx) with zeros coming in: what a crop of the zero-padded image shows."""
    out = torch.zeros_like(img)
    h, w = img.shape[-2:]
    out[:, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        img[:, max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


def test_crop_with_padding_shifts_content_and_flip_mirrors_about_half():
    split = indexed_split(400)
    loader = TensorLoader(split, 400, **RAW, shuffle=True, augment=Augment(crop_padding=2, flip=True), seed=5)
    x, y = collect(loader)
    x = x.round()  # undo float error of the identity normalisation
    shifts, flips = [], 0
    for img, i in zip(x, y, strict=True):
        orig = split.images[i].float()
        match = [(dy, dx, f) for dy in range(-2, 3) for dx in range(-2, 3) for f in (False, True)
                 if torch.equal(img, shifted(orig.flip(-1) if f else orig, dy, dx))]
        assert len(match) == 1, "an augmented image must be a zero-padded shift (maybe mirrored) of its source"
        shifts.append(match[0][:2])
        flips += match[0][2]
    assert len(set(shifts)) == 25  # every offset in [-2, 2]^2 occurs
    assert 0.4 < flips / len(x) < 0.6


@pytest.mark.parametrize("channels", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("channels_last", [False, True])
def test_augmented_batches_equal_a_per_image_crop_flip_and_normalise(channels: int, channels_last: bool):
    """The batch-wise gather gives exactly the per-image crop, mirror and normalisation, for any channel count."""
    split = Split(rand_images(37, channels, 6, seed=4), torch.arange(37))
    mean, std = tuple(0.1 * k for k in range(channels)), tuple(0.2 + 0.05 * k for k in range(channels))
    loader = TensorLoader(split, 8, mean=mean, std=std, shuffle=True, augment=Augment(crop_padding=2, flip=True),
                          seed=11, channels_last=channels_last)
    loader.set_epoch(3)
    order, (oy, ox, flip) = loader._plan()
    x, y = collect(loader)
    assert torch.equal(y, order)
    scale = 1 / (255 * torch.tensor(std)).view(channels, 1, 1)
    shift = (-torch.tensor(mean) / torch.tensor(std)).view(channels, 1, 1)
    for k, i in enumerate(order.tolist()):
        img = F.pad(split.images[i], (2, 2, 2, 2))[:, oy[k]:oy[k] + 6, ox[k]:ox[k] + 6]
        ref = (img.flip(-1) if flip[k] else img).float().mul(scale).add(shift)
        assert torch.equal(x[k], ref), f"sample {k}"
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    assert next(iter(loader))[0].is_contiguous(memory_format=fmt)


def test_synthetic_is_learnable_by_a_tiny_cnn():
    torch.manual_seed(0)
    b = load_dataset({"name": "synthetic"}, "unused")
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                                torch.nn.Linear(8 * 8 * 8, b.num_classes))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    train = TensorLoader(b.train, 32, mean=b.mean, std=b.std, shuffle=True)
    for epoch in range(5):
        train.set_epoch(epoch)
        for xb, yb in train:
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(xb), yb).backward()
            opt.step()
    x, y = collect(TensorLoader(b.test, 64, mean=b.mean, std=b.std))
    accuracy = (model(x).argmax(1) == y).float().mean().item()
    assert accuracy > 0.6, accuracy  # chance is 0.25
