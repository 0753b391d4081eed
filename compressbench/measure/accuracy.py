"""Top-1 (and top-5 where there are more than 10 classes) on the test and validation splits, in percent."""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from compressbench.engine import evaluate

if TYPE_CHECKING:
    from compressbench.context import RunContext


def accuracy_metrics(model: nn.Module, ctx: RunContext, device: torch.device) -> dict[str, float | None]:
    test = evaluate(model, ctx.eval_loader("test", device=device))
    val = evaluate(model, ctx.eval_loader("val", device=device), topk=(1,))
    return {
        "test_acc": test["top1"],
        "val_acc": val["top1"],
        "test_top5": test["top5"] if ctx.data.num_classes > 10 else None,
        "test_loss": test["loss"],
    }
