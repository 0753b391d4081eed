"""One distillation: resolve the teacher, check the layers, (FitNets) the hint phase, then ``engine.fit`` with the
distillation loss. Called by the ``distill`` stage (``stages/distill.py``), which owns the config."""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import torch
from torch import nn

from compressbench.config import ConfigError
from compressbench.engine import Fitted, evaluate
from compressbench.engine.train import train_module
from compressbench.models import eval_mode
from compressbench.techniques.distillation.features import FeatureTap, check_layers, probe_shapes
from compressbench.techniques.distillation.logits import teacher_logits
from compressbench.techniques.distillation.losses import Regressor
from compressbench.techniques.distillation.objective import DistillLoss, HintLoss, HintTrainee, agreement
from compressbench.techniques.distillation.plan import student_layers, teacher_layers
from compressbench.techniques.distillation.teacher import Teacher, resolve_teacher

if TYPE_CHECKING:
    from compressbench.config.distill import DistillConfig
    from compressbench.engine.env import StageEnv

HINT_SLOT = "hint_"  # FitNets phase 1's checkpoint slot, beside the stage's own


def uses_logit_table(cfg: DistillConfig, env: StageEnv) -> bool:
    """Precompute the teacher's logits when KD is the only teacher term and the inputs never change."""
    augmented = cfg.augment and env.data.augment.active
    return cfg.cache_teacher_logits and "kd" in cfg.loss and "at" not in cfg.loss and not augmented


def distill_student(student: nn.Module, incoming: nn.Module, cfg: DistillConfig, env: StageEnv) -> Fitted:
    """Train ``student`` against the teacher of ``cfg.teacher`` (``incoming`` by default)."""
    teacher = resolve_teacher(cfg.teacher, incoming, env)
    shapes = check_models(student, teacher, cfg, env)
    record = dict(teacher_model=teacher.arch, teacher_source=teacher.source,
                  teacher_params=sum(p.numel() for p in teacher.model.parameters()),
                  teacher_test_acc=evaluate(teacher.model, env.eval_loader("test"), topk=(1,))["top1"])
    pairs = list(zip(cfg.student_at_layers, cfg.at_layers, strict=True)) if "at" in cfg.loss else []
    hint: list[dict] = []
    with FeatureTap(student, [n for _, n in student_layers(cfg)]) as s_tap, \
            FeatureTap(teacher.model, [n for _, n in teacher_layers(cfg)]) as t_tap:
        if "fitnets" in cfg.loss:
            hint = hint_phase(student, teacher, cfg, env, s_tap, t_tap, shapes)
        table = None
        if uses_logit_table(cfg, env):
            table, hit = teacher_logits(teacher.model, env, env.plan.measure.eval_batch_size)
            record["teacher_logits"] = "cached (from disk)" if hit else "cached"
        else:
            record["teacher_logits"] = "on the fly"
        criterion = DistillLoss(cfg.loss, teacher.model, temperature=cfg.temperature, alpha=cfg.alpha,
                                beta=cfg.beta, label_smoothing=cfg.label_smoothing, table=table,
                                student_tap=s_tap, teacher_tap=t_tap, pairs=pairs)
        fitted = train_module(student, cfg, env, criterion, return_index=table is not None)
    history = merge_history(hint, fitted.history, cfg.hint_epochs) if hint else fitted.history
    record.update(fitted.record, teacher_agreement=agreement(fitted.model, teacher.model, env.eval_loader("test")))
    if hint:
        env.checkpoint(HINT_SLOT).clear()
    return Fitted(fitted.model, history, record)


def check_models(student: nn.Module, teacher: Teacher, cfg: DistillConfig,
                 env: StageEnv) -> dict[str, torch.Size]:
    """Fail before training unless the teacher fits the data and every named layer exists and runs once.

    Returns the output shapes of the named layers, keyed ``teacher:<name>`` / ``student:<name>``.
    """
    name = env.name
    t_layers, s_layers = teacher_layers(cfg), student_layers(cfg)
    for key, layer in t_layers:
        check_layers(teacher.model, [layer], f"{name}.{key}", f"teacher {teacher.arch}")
    for key, layer in s_layers:
        check_layers(student, [layer], f"{name}.{key}", f"student {cfg.student}")
    example = env.example_batch(2, env.device)
    with torch.no_grad():
        try:
            out = teacher.model.eval()(example)
        except RuntimeError as e:
            raise ConfigError(f"the teacher ({teacher.source}, {teacher.arch}) does not run on this dataset's "
                              f"{tuple(example.shape[1:])} images: {str(e).splitlines()[0]}") from None
    if out.ndim != 2 or out.shape[1] != env.data.num_classes:
        raise ConfigError(f"the teacher ({teacher.source}) gives {tuple(out.shape[1:])} outputs per image, the "
                          f"dataset has {env.data.num_classes} classes; a teacher must be trained on this dataset")
    shapes = {}
    for role, model, layers, arch in (("teacher", teacher.model, t_layers, teacher.arch),
                                      ("student", student, s_layers, cfg.student)):
        for key, layer in layers:
            shape = probe_shapes(model, [layer], example, f"{name}.{key}", f"{role} {arch}")[layer]
            shapes[f"{role}:{layer}"] = shape
    return shapes


def hint_phase(student: nn.Module, teacher: Teacher, cfg: DistillConfig, env: StageEnv, s_tap: FeatureTap,
               t_tap: FeatureTap, shapes: dict[str, torch.Size]) -> list[dict]:
    """FitNets phase 1: train the student up to the guided layer (+ a regressor) on the hint loss alone.

    Parameters after the guided layer are frozen for the phase. ``engine.fit`` runs it with ``keep=last``
    (validation accuracy means nothing before the head is trained) and its own checkpoint slot, so an
    interrupted phase 2 does not mistake phase 1's state for its own. Returns the phase's history rows.
    """
    assert cfg.hint_layer is not None
    guided = cfg.guided_layer or cfg.hint_layer
    regressor = Regressor(shapes[f"student:{guided}"], shapes[f"teacher:{cfg.hint_layer}"]).to(env.device)
    trainee = HintTrainee(student, regressor)
    criterion = HintLoss(teacher.model, regressor, s_tap, t_tap, guided, cfg.hint_layer)
    frozen = freeze_downstream_(trainee, criterion, env.example_batch(2, env.device))
    phase = dataclasses.replace(cfg, epochs=cfg.hint_epochs, lr=cfg.hint_lr or cfg.lr, keep="last",
                                warmup_epochs=min(cfg.warmup_epochs, cfg.hint_epochs))
    try:
        return train_module(trainee, phase, env, criterion, slot=HINT_SLOT).history
    finally:
        for p in frozen:
            p.requires_grad_(True)


def freeze_downstream_(trainee: HintTrainee, criterion: HintLoss, example: torch.Tensor) -> list[nn.Parameter]:
    """Freeze the parameters the hint loss does not reach (the layers after the guided one); return them.

    One backward pass on ``example`` (BN in eval mode, so no running statistics move) tells which parameters
    get a gradient. Frozen parameters stay out of the optimizer, and DistributedDataParallel, which fails on
    parameters without a gradient, never sees them.
    """
    with eval_mode(trainee):
        criterion(trainee(example), torch.empty(0), example, None).backward()
    frozen = [p for p in trainee.parameters() if p.requires_grad and p.grad is None]
    for p in trainee.parameters():
        p.grad = None
    for p in frozen:
        p.requires_grad_(False)
    return frozen


def merge_history(hint: list[dict], distill: list[dict], hint_epochs: int) -> list[dict]:
    """One history for both FitNets phases: phase 2's epochs continue after phase 1's (for the curves)."""
    return ([{**row, "phase": "hint"} for row in hint]
            + [{**row, "phase": "distill", "epoch": row["epoch"] + hint_epochs} for row in distill])
