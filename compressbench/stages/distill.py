"""The ``distill`` stage kind: train a student architecture against a teacher (KD, FitNets, attention transfer).

The stage returns the *student*, so later stages compress it. Its row measures the student (``model`` is the
student's name) and records the teacher: ``teacher_model``, ``teacher_source``, ``teacher_params``,
``teacher_test_acc`` and ``teacher_agreement`` (percent of test images where both pick the same class).
``loss: []`` trains the same student on labels alone, from the same initial weights: the scratch baseline in
one line (``scratch: {stage: distill, student: ..., loss: []}``).
"""
from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from compressbench.config import BadValue, ConfigError, Experiments, check
from compressbench.config.distill import LOSS_TERMS, DistillConfig, TeacherConfig
from compressbench.stages import StageResult, register_stage
from compressbench.stages.kind import FP32

__all__ = ["LOSS_TERMS", "DistillConfig", "TeacherConfig", "build_student", "distill"]

if TYPE_CHECKING:
    from compressbench.config import Plan
    from compressbench.engine.env import StageEnv
    from compressbench.runtimes import Deployable, Eager

def student_out(cfg: DistillConfig, incoming: dict[str, Any], exact: bool) -> tuple[dict[str, Any], bool]:
    """The stage hands on its student, whose layer names its config tells exactly."""
    return cfg.student_node, True


def check_distill(cfg: DistillConfig, name: str, plan: Plan, experiments: Experiments) -> None:
    """Checks that need the model zoo (it imports torch: ``validate`` runs them after every torch-free check)
    or the whole chain: the student's name, options and layer names, then the teacher (stage order, other
    experiments, its layer names). Still before any work; the stage runs them again."""
    from compressbench.models import check_model_config, model_names
    from compressbench.techniques.distillation.plan import check_plan, static_layers, student_layers

    models = f"a registered model: {', '.join(model_names())}"
    check(cfg.student in model_names(), f"{name}.student", cfg.student, models)
    try:
        check_model_config(cfg.student_node)
    except ConfigError as e:
        raise BadValue(f"{name}.student_options", cfg.student_options, str(e)) from None
    valid = static_layers(cfg.student_node)
    for key, layer in student_layers(cfg):
        check(layer in valid, f"{name}.{key}", layer, f"a layer of the student {cfg.student}: {sorted_names(valid)}")
    check(cfg.teacher.model is None or cfg.teacher.model in model_names(), f"{name}.teacher.model",
          cfg.teacher.model, models)
    check_plan(cfg, name, plan, experiments)


def check_teacher_file(cfg: DistillConfig, name: str, plan: Plan, num_classes: int, in_channels: int,
                       image_size: int) -> None:
    """A teacher file's tensor names and shapes against the teacher model it must fit."""
    if cfg.loss and cfg.teacher.path is not None:
        from compressbench.techniques.distillation.teacher import check_teacher_file as check_file

        check_file(cfg.teacher, f"{name}.teacher.path", plan.model, num_classes, in_channels, image_size)


def cache_salt(cfg: DistillConfig, experiments: Experiments, fingerprint: str) -> str | None:
    """What the teacher and the student are, beyond this config, is part of this stage's cache key: a teacher
    file's content, or another experiment's teacher stage key (an edited experiment file trains another
    teacher); a student from outside the zoo adds its builder's source hash."""
    teacher = teacher_salt(cfg, experiments, fingerprint)
    from compressbench.models import SOURCES, model_identity

    if cfg.student not in SOURCES:  # the zoo's students: keys as they always were
        return teacher
    return json.dumps({"teacher": teacher, "student": model_identity(cfg.student_node)}, sort_keys=True,
                      default=str)


def teacher_salt(cfg: DistillConfig, experiments: Experiments, fingerprint: str) -> str | None:
    if cfg.teacher.experiment is not None:
        from compressbench.techniques.distillation.teacher import experiment_stage

        plan = experiments.compose(cfg.teacher.experiment, cfg.teacher.overrides)
        return experiments.stage_key(plan, experiment_stage(cfg.teacher, plan), fingerprint)
    if cfg.teacher.path is None:
        return None
    from compressbench.config import resolve_path
    from compressbench.infra.hashing import file_sha256

    path = resolve_path(cfg.teacher.path)
    return file_sha256(path) if path.is_file() else None


def sorted_names(names: set[str]) -> str:
    from compressbench.techniques.distillation.features import describe_names

    return describe_names(sorted(names))


def build_student(cfg: DistillConfig, env: StageEnv) -> Eager:
    """The student for this dataset. Its initial weights depend on the student config and the run's seed only,
    so a scratch stage and a KD stage of one chain start from the same weights and differ by their loss."""
    import torch

    from compressbench.models import build_model
    from compressbench.runtimes import Arch, Eager

    data = env.data
    # Not stage_key: that hash includes the package and cache versions, and a release must not change inits.
    blob = json.dumps({"student": cfg.student_node, "seed": env.plan.runtime.seed}, sort_keys=True, default=str)
    seed = int(hashlib.sha256(blob.encode()).hexdigest()[:8], 16)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        student = build_model(cfg.student_node, data.num_classes, data.in_channels, data.image_size)
    student = student.to(env.device)
    if env.channels_last:
        student = student.to(memory_format=torch.channels_last)
    return Eager(student, Arch(cfg.student_node, data.num_classes, data.in_channels, data.image_size))


# Reading the incoming model as its teacher needs an fp32 model (a scratch student, loss=[], reads nothing); the
# student it hands on is fp32, another architecture: later layer names refer to it.
@register_stage("distill", DistillConfig, distributed=True, needs_fp32=lambda cfg: bool(cfg.loss), makes=FP32,
                does="distills from the fp32 model it gets", changes_layer_names=True, replaces_model=True,
                output=student_out, plan_check=check_distill, files_check=check_teacher_file, salt=cache_salt)
def distill(artifact: Deployable, cfg: DistillConfig, env: StageEnv) -> StageResult:
    """Train ``cfg.student`` against the teacher ``cfg.teacher`` names (default: the incoming model); hand on
    the student."""
    from compressbench.engine import Diverged
    from compressbench.engine.train import train_module
    from compressbench.models import model_label
    from compressbench.runtimes import Eager, as_module
    from compressbench.techniques.distillation.run import distill_student

    check_distill(cfg, env.name, env.plan, env.experiments)  # cheap; validate may already have run it
    student = build_student(cfg, env)
    record: dict[str, Any] = {"model": model_label(cfg.student_node), "student": cfg.student}
    if not cfg.loss:
        fitted = train_module(student.module, cfg, env)
    else:
        try:
            fitted = distill_student(student.module, as_module(artifact, env.name), cfg, env)
        except Diverged as e:
            raise Diverged(f"{e}. Distillation adds alpha T^2 KL (and beta/2 AT) to the loss: KD at a low "
                           f"{env.name}.temperature (now {cfg.temperature}) is a known source, as logits / T "
                           f"overflow (already at T ~ 1e-3 under fp16 AMP), and a large {env.name}.beta (now "
                           f"{cfg.beta}) scales the AT gradients; raise the temperature (2 to 20) or lower beta",
                           record=e.record) from None
    return StageResult(Eager(fitted.model, student.arch), {**record, **fitted.record}, fitted.history)
