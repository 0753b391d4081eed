"""One distillation: resolve the teacher, check the layers, (FitNets) the hint phase, then ``engine.fit`` with the
distillation loss. Called by the ``distill`` stage (``stages/distill.py``), which owns the config."""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import torch
from torch import nn

from compressbench.config import ConfigError
from compressbench.distillation.features import FeatureTap, check_layers, probe_shapes
from compressbench.distillation.logits import teacher_logits
from compressbench.distillation.losses import Regressor
from compressbench.distillation.objective import DistillLoss, HintLoss, HintTrainee, agreement
from compressbench.distillation.plan import student_layers, teacher_layers
from compressbench.distillation.teacher import Teacher, resolve_teacher
from compressbench.engine import evaluate, fit
from compressbench.models import eval_mode
from compressbench.results import write_csv

if TYPE_CHECKING:
    from compressbench.context import RunContext
    from compressbench.stages.distill import DistillConfig

HINT_RESUME = "resume_hint.pt"  # FitNets phase 1's resume state, next to the stage's own resume.pt


def uses_logit_table(cfg: DistillConfig, ctx: RunContext) -> bool:
    """Precompute the teacher's logits when KD is the only teacher term and the inputs never change."""
    augmented = cfg.augment and ctx.data.augment.active
    return cfg.cache_teacher_logits and "kd" in cfg.loss and "at" not in cfg.loss and not augmented


def distill_student(student: nn.Module, incoming: nn.Module, cfg: DistillConfig, ctx: RunContext) -> nn.Module:
    """Train ``student`` against the teacher of ``cfg.teacher`` (``incoming`` by default) and return it."""
    teacher = resolve_teacher(cfg.teacher, incoming, ctx)
    shapes = check_models(student, teacher, cfg, ctx)
    ctx.record(teacher_model=teacher.arch, teacher_source=teacher.source,
               teacher_params=sum(p.numel() for p in teacher.model.parameters()),
               teacher_test_acc=evaluate(teacher.model, ctx.eval_loader("test"), topk=(1,))["top1"])
    pairs = list(zip(cfg.student_at_layers, cfg.at_layers, strict=True)) if "at" in cfg.loss else []
    hint_rows = 0
    with FeatureTap(student, [n for _, n in student_layers(cfg)]) as s_tap, \
            FeatureTap(teacher.model, [n for _, n in teacher_layers(cfg)]) as t_tap:
        if "fitnets" in cfg.loss:
            hint_rows = hint_phase(student, teacher, cfg, ctx, s_tap, t_tap, shapes)
        table = None
        if uses_logit_table(cfg, ctx):
            table, hit = teacher_logits(teacher.model, ctx, ctx.plan.measure.eval_batch_size)
            ctx.record(teacher_logits="cached (from disk)" if hit else "cached")
        else:
            ctx.record(teacher_logits="on the fly")
        criterion = DistillLoss(cfg.loss, teacher.model, temperature=cfg.temperature, alpha=cfg.alpha,
                                beta=cfg.beta, label_smoothing=cfg.label_smoothing, table=table,
                                student_tap=s_tap, teacher_tap=t_tap, pairs=pairs)
        student = fit(student, cfg, ctx, criterion, return_index=table is not None)
    if hint_rows:
        merge_history(ctx, hint_rows, cfg.hint_epochs)
    ctx.record(teacher_agreement=agreement(student, teacher.model, ctx.eval_loader("test")))
    if ctx.resume_file is not None:
        ctx.resume_file.with_name(HINT_RESUME).unlink(missing_ok=True)
    return student


def check_models(student: nn.Module, teacher: Teacher, cfg: DistillConfig,
                 ctx: RunContext) -> dict[str, torch.Size]:
    """Fail before training unless the teacher fits the data and every named layer exists and runs once.

    Returns the output shapes of the named layers, keyed ``teacher:<name>`` / ``student:<name>``.
    """
    name = ctx.stage_name
    t_layers, s_layers = teacher_layers(cfg), student_layers(cfg)
    for key, layer in t_layers:
        check_layers(teacher.model, [layer], f"{name}.{key}", f"teacher {teacher.arch}")
    for key, layer in s_layers:
        check_layers(student, [layer], f"{name}.{key}", f"student {cfg.student}")
    example = ctx.example_batch(2, ctx.device)
    with torch.no_grad():
        try:
            out = teacher.model.eval()(example)
        except RuntimeError as e:
            raise ConfigError(f"the teacher ({teacher.source}, {teacher.arch}) does not run on this dataset's "
                              f"{tuple(example.shape[1:])} images: {str(e).splitlines()[0]}") from None
    if out.ndim != 2 or out.shape[1] != ctx.data.num_classes:
        raise ConfigError(f"the teacher ({teacher.source}) gives {tuple(out.shape[1:])} outputs per image, the "
                          f"dataset has {ctx.data.num_classes} classes; a teacher must be trained on this dataset")
    shapes = {}
    for role, model, layers, arch in (("teacher", teacher.model, t_layers, teacher.arch),
                                      ("student", student, s_layers, cfg.student)):
        for key, layer in layers:
            shape = probe_shapes(model, [layer], example, f"{name}.{key}", f"{role} {arch}")[layer]
            shapes[f"{role}:{layer}"] = shape
    return shapes


def hint_phase(student: nn.Module, teacher: Teacher, cfg: DistillConfig, ctx: RunContext, s_tap: FeatureTap,
               t_tap: FeatureTap, shapes: dict[str, torch.Size]) -> int:
    """FitNets phase 1: train the student up to the guided layer (+ a regressor) on the hint loss alone.

    Parameters after the guided layer are frozen for the phase. ``engine.fit`` runs it with ``keep=last``
    (validation accuracy means nothing before the head is trained) and its own resume file, so an interrupted
    phase 2 does not mistake phase 1's state for its own. Returns the number of history rows it added.
    """
    assert cfg.hint_layer is not None
    guided = cfg.guided_layer or cfg.hint_layer
    regressor = Regressor(shapes[f"student:{guided}"], shapes[f"teacher:{cfg.hint_layer}"]).to(ctx.device)
    trainee = HintTrainee(student, regressor)
    criterion = HintLoss(teacher.model, regressor, s_tap, t_tap, guided, cfg.hint_layer)
    frozen = freeze_downstream_(trainee, criterion, ctx.example_batch(2, ctx.device))
    phase = dataclasses.replace(cfg, epochs=cfg.hint_epochs, lr=cfg.hint_lr or cfg.lr, keep="last",
                                warmup_epochs=min(cfg.warmup_epochs, cfg.hint_epochs))
    before = len(ctx.history)
    resume = ctx.resume_file
    if resume is not None:
        ctx.resume_file = resume.with_name(HINT_RESUME)
    try:
        fit(trainee, phase, ctx, criterion)
    finally:
        ctx.resume_file = resume
        for p in frozen:
            p.requires_grad_(True)
    return len(ctx.history) - before


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


def merge_history(ctx: RunContext, hint_rows: int, hint_epochs: int) -> None:
    """One history for both FitNets phases: phase 2's epochs continue after phase 1's (for the curves)."""
    for i, row in enumerate(ctx.history):
        row["phase"] = "hint" if i < hint_rows else "distill"
        if i >= hint_rows:
            row["epoch"] += hint_epochs
    if ctx.dist.is_main:  # rank 0 owns the files
        write_csv(ctx.stage_dir / "history.csv", ctx.history)
