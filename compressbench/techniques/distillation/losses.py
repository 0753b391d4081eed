"""The distillation losses: Hinton KD, FitNets hints (with their regressor) and attention transfer.

Each takes student and teacher tensors of one batch and returns a scalar; all arithmetic is float32, so they
behave the same under AMP autocast.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Hinton et al. 2015: KL(softmax(t/T) || softmax(s/T)) × T², averaged over the batch.

    Both sides are log-softmaxed and ``log_target=True``: a teacher probability that underflows to 0 at a low
    temperature stays a finite log-probability instead of giving ``0 · log 0 = nan``. The T² keeps the
    gradient scale independent of T, so ``alpha`` means the same at every temperature.
    """
    t = temperature
    log_s = F.log_softmax(student_logits.float() / t, dim=1)
    log_t = F.log_softmax(teacher_logits.float() / t, dim=1)
    return F.kl_div(log_s, log_t, reduction="batchmean", log_target=True) * (t * t)


def attention_map(features: torch.Tensor) -> torch.Tensor:
    """Zagoruyko & Komodakis 2017: spatial attention = channel mean of squared activations, [B, H, W]."""
    if features.ndim != 4:
        raise ValueError(f"attention transfer needs 4-D feature maps [B, C, H, W], got {tuple(features.shape)}; "
                         f"pick a convolutional layer")
    return features.float().pow(2).mean(dim=1)


def at_loss(student_features: torch.Tensor, teacher_features: torch.Tensor) -> torch.Tensor:
    """Squared distance of the L2-normalised attention maps, averaged over batch and positions.

    The paper pairs layers of equal resolution; where the two maps differ in size the larger is average-pooled
    to the smaller, so a student with fewer pooling steps can still be paired.
    """
    a_s, a_t = attention_map(student_features), attention_map(teacher_features)
    if a_s.shape[1:] != a_t.shape[1:]:
        size = (min(a_s.shape[1], a_t.shape[1]), min(a_s.shape[2], a_t.shape[2]))
        a_s = F.adaptive_avg_pool2d(a_s[:, None], size)[:, 0]
        a_t = F.adaptive_avg_pool2d(a_t[:, None], size)[:, 0]
    q_s = F.normalize(a_s.flatten(1), dim=1)
    q_t = F.normalize(a_t.flatten(1), dim=1)
    return (q_s - q_t).pow(2).mean()


class Regressor(nn.Module):
    """FitNets' regressor: maps the student's guided-layer output onto the teacher's hint-layer shape.

    Conv maps on both sides: a 1x1 conv (student → teacher channels), then average pooling where the student's
    map is larger (the teacher's hint is pooled in ``hint_loss`` where it is the larger one). Anything else is
    flattened and mapped by a linear layer.
    """

    def __init__(self, student_shape: torch.Size, teacher_shape: torch.Size) -> None:
        super().__init__()
        self.conv = len(student_shape) == 4 and len(teacher_shape) == 4
        if self.conv:
            self.map: nn.Module = nn.Conv2d(student_shape[1], teacher_shape[1], 1, bias=False)
            self.size = (min(student_shape[2], teacher_shape[2]), min(student_shape[3], teacher_shape[3]))
        else:
            self.map = nn.Linear(_flat(student_shape), _flat(teacher_shape))

    def forward(self, student_features: torch.Tensor) -> torch.Tensor:
        if self.conv:
            out = self.map(student_features)
            return out if out.shape[2:] == self.size else F.adaptive_avg_pool2d(out, self.size)
        return self.map(student_features.flatten(1))


def hint_loss(regressed: torch.Tensor, hint: torch.Tensor) -> torch.Tensor:
    """FitNets' hint loss ½‖u_h − r(v_g)‖², as a mean over elements (independent of the layer size)."""
    hint = hint.float()
    if regressed.ndim == 4 and hint.shape[2:] != regressed.shape[2:]:
        hint = F.adaptive_avg_pool2d(hint, regressed.shape[2:])
    return 0.5 * F.mse_loss(regressed.float(), hint.reshape(regressed.shape))


def _flat(shape: torch.Size) -> int:
    n = 1
    for s in shape[1:]:
        n *= s
    return n
