"""The criteria ``engine.fit`` trains a student with, and the student/teacher agreement measured afterwards.

A criterion is ``criterion(logits, targets, inputs, index)``: the student's forward has already run (its named
features sit in a FeatureTap), the teacher runs here under ``no_grad`` unless its logits were precomputed, in
which case they are looked up by the samples' indices.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from compressbench.techniques.distillation.features import FeatureTap
from compressbench.techniques.distillation.losses import Regressor, at_loss, hint_loss, kd_loss


class DistillLoss:
    """(1 − α)·CE + α·T²·KL(teacher ‖ student) [kd] + β/2·Σ AT(pair) [at]; CE weighs 1 without kd.

    Args:
        terms: the loss terms in use ("kd", "at"; "fitnets" is the earlier hint phase, not a term here).
        teacher: the teacher in eval mode.
        table: the teacher's logits for every train sample (row = index in the split), or None to run the
            teacher on each batch.
        student_tap, teacher_tap: the named features of the last forward of each.
        pairs: (student layer, teacher layer) for attention transfer.
    """

    def __init__(self, terms: Sequence[str], teacher: nn.Module, *, temperature: float, alpha: float,
                 beta: float, label_smoothing: float, table: torch.Tensor | None = None,
                 student_tap: FeatureTap | None = None, teacher_tap: FeatureTap | None = None,
                 pairs: Sequence[tuple[str, str]] = ()) -> None:
        self.kd, self.at = "kd" in terms, "at" in terms
        self.teacher, self.table = teacher, table
        self.temperature, self.alpha, self.beta = temperature, alpha, beta
        self.label_smoothing = label_smoothing
        self.student_tap, self.teacher_tap, self.pairs = student_tap, teacher_tap, list(pairs)
        self.ce_weight = 1.0 - alpha if self.kd else 1.0

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor, inputs: torch.Tensor,
                 index: torch.Tensor | None = None) -> torch.Tensor:
        teacher_logits = None
        if self.at or self.table is None:
            with torch.no_grad():
                teacher_logits = self.teacher(inputs)
        loss = logits.new_zeros((), dtype=torch.float32)
        if self.ce_weight > 0:
            loss = loss + self.ce_weight * F.cross_entropy(logits.float(), targets,
                                                           label_smoothing=self.label_smoothing)
        if self.kd:
            if teacher_logits is None:
                assert self.table is not None and index is not None, "cached teacher logits need sample indices"
                teacher_logits = self.table[index]
            loss = loss + self.alpha * kd_loss(logits, teacher_logits, self.temperature)
        if self.at:
            assert self.student_tap is not None and self.teacher_tap is not None
            transfer = sum(at_loss(self.student_tap[s], self.teacher_tap[t]) for s, t in self.pairs)
            loss = loss + self.beta / 2 * transfer
        return loss


class HintTrainee(nn.Module):
    """FitNets phase 1: the student with its regressor, so ``engine.fit`` optimises both.

    The hint loss reaches only the layers up to the guided one; the others get no gradient, and SGD/AdamW
    leave parameters without a gradient untouched (no weight decay either).
    """

    def __init__(self, student: nn.Module, regressor: Regressor) -> None:
        super().__init__()
        self.student, self.regressor = student, regressor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.student(x)


class HintLoss:
    """½‖hint − r(guided)‖²: the teacher's hint-layer output against the regressed guided-layer output."""

    def __init__(self, teacher: nn.Module, regressor: Regressor, student_tap: FeatureTap, teacher_tap: FeatureTap,
                 guided: str, hint: str) -> None:
        self.teacher, self.regressor = teacher, regressor
        self.student_tap, self.teacher_tap = student_tap, teacher_tap
        self.guided, self.hint = guided, hint

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor, inputs: torch.Tensor,
                 index: torch.Tensor | None = None) -> torch.Tensor:
        with torch.no_grad():
            self.teacher(inputs)
        return hint_loss(self.regressor(self.student_tap[self.guided]), self.teacher_tap[self.hint])


@torch.no_grad()
def agreement(student: nn.Module, teacher: nn.Module, batches: Iterable[tuple[torch.Tensor, ...]]) -> float:
    """Percent of samples on which the student's top-1 class is the teacher's (fidelity, Stanton et al. 2021)."""
    student.eval()
    teacher.eval()
    same = seen = 0
    for x, *_ in batches:
        same += (student(x).argmax(1) == teacher(x).argmax(1)).sum().item()
        seen += len(x)
    return 100.0 * same / seen if seen else float("nan")


@torch.no_grad()
def mean_kl(student: nn.Module, teacher: nn.Module, batches: Iterable[tuple[torch.Tensor, ...]],
            temperature: float = 1.0) -> float:
    """Mean KL(teacher ‖ student) per sample at ``temperature`` (without the T² factor)."""
    student.eval()
    teacher.eval()
    total, seen = 0.0, 0
    for x, *_ in batches:
        s = F.log_softmax(student(x).float() / temperature, 1)
        t = F.log_softmax(teacher(x).float() / temperature, 1)
        total += F.kl_div(s, t, reduction="sum", log_target=True).item()
        seen += len(x)
    return total / seen if seen else float("nan")
