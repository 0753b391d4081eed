"""assemble's in-place reordering: the same splits as gathering copies would give, held once in memory."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from compressbench.data import Split, load_dataset
from compressbench.data.split import TEST_SEED, assemble, channel_stats, permute_rows_, stratified_split

OPTS = {"val_fraction": 0.1, "test_fraction": 0.2, "split_seed": 3, "augment": {"crop_padding": 0, "flip": False}}


@pytest.mark.parametrize("order", ["random", "identity", "reverse", "swap"])
def test_permute_rows_in_place_equals_a_gather(order: str):
    n = 257
    x = torch.randint(0, 256, (n, 2, 3, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    perm = {"random": np.random.default_rng(0).permutation(n), "identity": np.arange(n),
            "reverse": np.arange(n)[::-1].copy(), "swap": np.r_[1, 0, 2:n]}[order]
    expected = x[torch.from_numpy(perm)]
    storage = x.untyped_storage().data_ptr()
    permute_rows_(x, perm)
    assert torch.equal(x, expected) and x.untyped_storage().data_ptr() == storage


def reference_splits(images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """What assemble returned before it reordered in place: index_select copies of the carved indices."""
    keep, test_idx = stratified_split(labels.numpy(), OPTS["test_fraction"], TEST_SEED)
    rel_train, rel_val = stratified_split(labels.numpy()[keep], OPTS["val_fraction"], OPTS["split_seed"])
    return tuple(images[torch.from_numpy(i)] for i in (keep[rel_train], keep[rel_val], test_idx))


def test_assemble_gives_the_same_splits_as_copies_and_holds_them_once():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (500, 3, 8, 8), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 7, (500,), generator=g)
    expected = reference_splits(images, labels)
    b = assemble("x", Split(images.clone(), labels.clone()), None, [str(i) for i in range(7)], OPTS)
    for got, want in zip((b.train, b.val, b.test), expected, strict=True):
        assert torch.equal(got.images, want)
    storages = {s.images.untyped_storage().data_ptr() for s in (b.train, b.val, b.test)}
    assert len(storages) == 1 and b.train.images.untyped_storage().nbytes() == images.numel()


def test_digits_split_is_unchanged():
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    images = torch.from_numpy(np.round(x * 255 / 16).reshape(-1, 1, 8, 8)).to(torch.uint8)
    b = load_dataset({"name": "digits", "split_seed": 3}, "unused")
    for got, want in zip((b.train, b.val, b.test), reference_splits(images, torch.from_numpy(y)), strict=True):
        assert torch.equal(got.images, want)


def test_channel_stats_match_float64_on_large_images():
    x = torch.randint(0, 256, (7, 3, 224, 224), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    x[:, 1] //= 4  # channels with different statistics
    mean, std = channel_stats(x, chunk_elements=1 << 16)  # chunks smaller than one image: one image per chunk
    ref = x.double().div(255).transpose(0, 1).reshape(3, -1)
    assert torch.allclose(torch.tensor(mean, dtype=torch.float64), ref.mean(1), atol=1e-7)
    assert torch.allclose(torch.tensor(std, dtype=torch.float64), ref.std(1, correction=0), atol=1e-6)


def test_svhn_planes_are_transposed_in_place():
    from compressbench.data.svhn import nchw_in_place

    x = np.asfortranarray(np.random.default_rng(0).integers(0, 256, (5, 7, 3, 11), dtype=np.uint8))  # MATLAB's
    view = np.transpose(x, (3, 2, 0, 1))  # what torchvision's SVHN holds: [N, C, H, W], planes column-major
    expected = np.ascontiguousarray(view)  # a copy, taken before the memory is rearranged
    out = nchw_in_place(view, chunk=4)
    assert out.is_contiguous() and np.array_equal(out.numpy(), expected)
    assert out.numpy().ctypes.data == x.ctypes.data  # the same memory: no second copy
