"""Knowledge distillation: losses (Hinton KD, FitNets hints, attention transfer), feature hooks, teacher
resolution and the teacher-logit cache. The ``distill`` stage (``stages/distill.py``) puts them together."""
from __future__ import annotations

from compressbench.techniques.distillation.features import FeatureTap, check_layers, layer_names, probe_shapes
from compressbench.techniques.distillation.logits import teacher_logits, weights_fingerprint
from compressbench.techniques.distillation.losses import Regressor, at_loss, attention_map, hint_loss, kd_loss
from compressbench.techniques.distillation.objective import (
           DistillLoss,
           HintLoss,
           HintTrainee,
           agreement,
           mean_kl,
)
from compressbench.techniques.distillation.teacher import Teacher, resolve_teacher

__all__ = ["DistillLoss", "FeatureTap", "HintLoss", "HintTrainee", "Regressor", "Teacher", "agreement",
           "at_loss", "attention_map", "check_layers", "hint_loss", "kd_loss", "layer_names", "mean_kl",
           "probe_shapes", "resolve_teacher", "teacher_logits", "weights_fingerprint"]
