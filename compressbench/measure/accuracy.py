"""Top-1 (and top-5 where there are more than 10 classes) on the test and validation splits, in percent."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import nullcontext
from typing import Any

import torch
import torch.nn.functional as F

from compressbench.runtimes import Deployable


@torch.no_grad()
def evaluate(model: Any, batches: Iterable, *, precision: Any = None,
             topk: tuple[int, ...] = (1, 5)) -> dict[str, float]:
    """Mean loss, top-k accuracies (percent) and image count ``n`` of ``model`` (an ``nn.Module`` or a
    ``Deployable``: anything with ``eval()`` that maps a batch to logits) over ``batches``."""
    model.eval()
    autocast = precision.autocast() if precision is not None else nullcontext()
    loss_sum, seen = 0.0, 0
    hits = dict.fromkeys(topk, 0)
    with autocast:
        for x, y, *_ in batches:
            logits = model(x).float()
            loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
            ranked = logits.topk(min(max(topk), logits.shape[1]), dim=1).indices
            for k in topk:
                hits[k] += (ranked[:, :k] == y[:, None]).any(1).sum().item()
            seen += len(y)
    if not seen:  # an empty split (val_fraction=0) has no accuracy, not a zero one
        return {"loss": float("nan"), "n": 0, **{f"top{k}": float("nan") for k in topk}}
    out = {"loss": loss_sum / seen, "n": seen}
    out.update({f"top{k}": 100.0 * hits[k] / seen for k in topk})
    return out


def accuracy_metrics(artifact: Deployable, batches: Callable[[str, torch.device], Iterable], device: torch.device,
                     num_classes: int) -> dict[str, float | int | None]:
    test = evaluate(artifact, batches("test", device))
    val = evaluate(artifact, batches("val", device), topk=(1,))
    return {
        "test_acc": test["top1"],
        "val_acc": val["top1"],
        "test_top5": test["top5"] if num_classes > 10 else None,
        "test_loss": test["loss"],
        "test_images": test["n"],  # for intervals: the accuracy of n images is a binomial proportion
    }
