"""Top-1 (and top-5 where there are more than 10 classes) on the test and validation splits, in percent."""
from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

from compressbench.engine import evaluate
from compressbench.runtimes import Deployable


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
