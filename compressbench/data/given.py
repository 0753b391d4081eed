"""``dataset=datasets``: the torch ``Dataset``s handed to ``compressbench.run(data=(train, test))``.

``register_datasets`` reads every ``(image, label)`` pair once into uint8 tensors (the in-memory form every
dataset here takes; images as uint8, or floats in [0, 1] as ``ToTensor`` makes them — normalisation is ours,
from the train split) and returns the config node naming them by the sha256 of those tensors. The loader then
carves validation from train like any other dataset, and the fingerprint is of the tensors, so the same data
hits the cache in a later process.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from compressbench.data.fingerprint import tensor_digest
from compressbench.data.registry import DATASETS
from compressbench.data.split import DataBundle, Split, assemble, read_options

_GIVEN: dict[str, tuple[Split, Split, list[str]]] = {}


def _image(x: Any, where: str) -> torch.Tensor:
    """One image as uint8 [C, H, W]: a uint8 or [0, 1] float tensor/array ([C, H, W] or [H, W]), or a PIL image."""
    if not isinstance(x, (torch.Tensor, np.ndarray)):
        if not hasattr(x, "mode") or not hasattr(x, "size"):  # not a PIL image either
            raise TypeError(f"{where}: images must be tensors, arrays or PIL images, not {type(x).__name__}")
        x = torch.from_numpy(np.asarray(x).copy())
        x = x.unsqueeze(0) if x.ndim == 2 else x.permute(2, 0, 1)  # PIL is [H, W, C]
    t = torch.as_tensor(x)
    t = t.unsqueeze(0) if t.ndim == 2 else t
    if t.ndim != 3:
        raise ValueError(f"{where}: an image must be [C, H, W] or [H, W], got shape {tuple(t.shape)}")
    if t.dtype == torch.uint8:
        return t
    if not t.is_floating_point() or float(t.min()) < 0 or float(t.max()) > 1:
        raise ValueError(f"{where}: images must be uint8 or floats in [0, 1] (transforms.ToTensor(), without "
                         f"Normalize: compressbench normalises with the train split's mean and std); got {t.dtype} "
                         f"in [{float(t.min()):.3g}, {float(t.max()):.3g}]")
    return (t * 255).round().to(torch.uint8)


def to_split(dataset: Any, which: str) -> Split:
    """Every ``(image, label)`` of ``dataset`` as one in-memory Split."""
    n = len(dataset)
    if n == 0:
        raise ValueError(f"data: the {which} dataset is empty")
    images, labels = [], []
    for i in range(n):
        item = dataset[i]
        if not isinstance(item, (tuple, list)) or len(item) < 2:
            raise ValueError(f"data: {which}[{i}] is {type(item).__name__}; each item must be (image, label)")
        images.append(_image(item[0], f"data: {which}[{i}]"))
        labels.append(int(item[1]))
    shapes = {tuple(t.shape) for t in images}
    if len(shapes) > 1:
        raise ValueError(f"data: the {which} images have several shapes {sorted(shapes)[:3]}; resize them to one "
                         f"square size (e.g. transforms.Resize((32, 32)))")
    return Split(torch.stack(images), torch.tensor(labels, dtype=torch.int64))


def register_datasets(train: Any, test: Any) -> dict[str, Any]:
    """Read ``train`` and ``test`` into memory for this process; the ``dataset`` node (``name: datasets``)."""
    tr, te = to_split(train, "train"), to_split(test, "test")
    if tr.images.shape[1:] != te.images.shape[1:]:
        raise ValueError(f"data: train images are {list(tr.images.shape[1:])} but test images "
                         f"{list(te.images.shape[1:])}; give both the same size")
    k = int(max(tr.labels.max(), te.labels.max())) + 1
    if int(min(tr.labels.min(), te.labels.min())) < 0:
        raise ValueError("data: labels must be class indices 0..K-1")
    classes = getattr(train, "classes", None)
    names = [str(c) for c in classes] if isinstance(classes, (list, tuple)) and len(classes) >= k else \
        [str(i) for i in range(k)]
    digest = tensor_digest(tr.images, tr.labels, te.images, te.labels)
    _GIVEN.setdefault(digest, (tr, te, names))
    return {"name": "datasets", "digest": digest, "label": type(train).__name__}


@DATASETS.register("datasets")
def load_given(cfg: Mapping[str, Any], data_dir: Path, cache_dir: Path) -> DataBundle:
    """The Datasets registered under ``cfg.digest`` in this process; validation carved from train."""
    opts = read_options(cfg, {"digest": None, "label": None}, "datasets")
    if opts["digest"] not in _GIVEN:
        raise ValueError(f"dataset=datasets names the Datasets handed to compressbench.run(data=...), and this "
                         f"process holds none with dataset.digest={str(opts['digest'])[:16]}; call "
                         f"compressbench.run(data=(train, test), ...) again")
    train, test, names = _GIVEN[opts["digest"]]
    # assemble reorders its source in place: hand it copies, so the next run starts from the same order.
    source = Split(train.images.clone(), train.labels.clone())
    return assemble("datasets", source, Split(test.images.clone(), test.labels.clone()), names, opts,
                    {"label": opts["label"]})
