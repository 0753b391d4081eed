"""Top-1 (and top-5 where there are more than 10 classes) on the test and validation splits, in percent.

Ties are scored neutrally, the same for every runtime: an int8 model's logits take few distinct values, so two
classes often share the top logit, and ``topk`` (lowest index first) or ``argmax`` would each pick a winner by
class index — a rule, not the model. An image whose label shares its logit with ``e`` classes (itself included)
and has ``g`` classes strictly above it is credited ``clamp((k − g) / e, 0, 1)`` for top-k: the expected hit of a
uniformly random tie-break. A clean top-1 hit is 1, a top-1 tie of ``e`` classes that includes the label 1/e.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import nullcontext
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from compressbench.runtimes import Deployable

# The per-image test hits a measurement hands the pipeline (a file in the stage's folder, never a row column).
PER_IMAGE_KEY = "test_hits"


def tie_credit(logits: torch.Tensor, y: torch.Tensor, k: int) -> torch.Tensor:
    """Per image, the top-``k`` credit in [0, 1] under a neutral tie rule (module docstring); an image with a
    non-finite logit scores 0 (a broken model gets no credit from NaN comparisons)."""
    label = logits.gather(1, y[:, None])
    above = (logits > label).sum(1)
    equal = (logits == label).sum(1)
    credit = ((k - above).float() / equal.clamp(min=1).float()).clamp(0.0, 1.0)
    return torch.where(torch.isfinite(logits).all(1) & (equal > 0), credit, torch.zeros_like(credit))


def top1_ties(logits: torch.Tensor) -> torch.Tensor:
    """Per image, how many classes share the top logit (1: no tie)."""
    return (logits == logits.max(1, keepdim=True).values).sum(1)


@torch.no_grad()
def evaluate(model: Any, batches: Iterable, *, precision: Any = None, topk: tuple[int, ...] = (1, 5),
             per_image: bool = False) -> dict[str, Any]:
    """Mean loss, top-k accuracies (percent, ties credited fractionally), image count ``n`` and ``ties`` (images
    whose top logit is shared by several classes) of ``model`` (an ``nn.Module`` or a ``Deployable``: anything
    with ``eval()`` that maps a batch to logits) over ``batches``.

    With ``per_image``, also ``hits``: per image in batch order, 0 when top-1 is wrong, else the number of
    classes tied at the top with the label (1: a clean hit; its credit is 1/that) — uint8 or uint16.
    """
    model.eval()
    autocast = precision.autocast() if precision is not None else nullcontext()
    loss_sum, seen, ties = 0.0, 0, 0
    hits = dict.fromkeys(topk, 0.0)
    shares: list[torch.Tensor] = []
    with autocast:
        for x, y, *_ in batches:
            logits = model(x).float()
            loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
            for k in topk:
                hits[k] += tie_credit(logits, y, min(k, logits.shape[1])).double().sum().item()
            tied = top1_ties(logits)
            ties += int((tied > 1).sum().item())
            if per_image:
                top1 = tie_credit(logits, y, 1)
                shares.append(torch.where(top1 > 0, tied, torch.zeros_like(tied)).cpu())
            seen += len(y)
    out: dict[str, Any] = {"n": seen, "ties": ties}
    if per_image:
        shares_np = torch.cat(shares).numpy() if shares else np.zeros(0, dtype=np.int64)
        out["hits"] = shares_np.astype(np.uint8 if shares_np.size == 0 or shares_np.max() < 256 else np.uint16)
    if not seen:  # an empty split (val_fraction=0) has no accuracy, not a zero one
        return {**out, "loss": float("nan"), **{f"top{k}": float("nan") for k in topk}}
    out["loss"] = loss_sum / seen
    out.update({f"top{k}": 100.0 * hits[k] / seen for k in topk})
    return out


def accuracy_metrics(artifact: Deployable, batches: Callable[[str, torch.device], Iterable], device: torch.device,
                     num_classes: int) -> dict[str, Any]:
    """The accuracy columns of a row, and the per-image test hits under ``PER_IMAGE_KEY`` (for the pipeline)."""
    test = evaluate(artifact, batches("test", device), per_image=True)
    val = evaluate(artifact, batches("val", device), topk=(1,))
    return {
        "test_acc": test["top1"],
        "val_acc": val["top1"],
        "test_top5": test["top5"] if num_classes > 10 else None,
        "test_loss": test["loss"],
        "test_images": test["n"],  # for intervals: the accuracy of n images is a binomial proportion
        "test_ties": test["ties"],
        "val_ties": val["ties"],
        PER_IMAGE_KEY: test["hits"],
    }
