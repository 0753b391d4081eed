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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from compressbench.config import BadValue, ConfigError, Experiments, TrainConfig, check
from compressbench.stages import StageResult, register_stage

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from compressbench.engine.env import StageEnv
    from compressbench.pipeline.plan import Plan
    from compressbench.runtimes import Deployable, Eager

LOSS_TERMS = ("kd", "fitnets", "at")


@dataclass
class TeacherConfig:
    """Where the teacher comes from; all unset = the model entering the stage (e.g. the output of ``train``)."""

    stage: str | None = None  # an earlier stage of this chain; with `experiment`, a stage of that experiment
    experiment: str | None = None  # another experiment (conf/experiment/NAME.yaml), read from the stage cache
    overrides: list[str] = field(default_factory=list)  # overrides that experiment was run with
    path: str | None = None  # a state_dict file (loaded weights-only) ...
    model: str | None = None  # ... of this architecture (default: this config's model)

    def __post_init__(self) -> None:
        check(self.path is None or (self.stage is None and self.experiment is None), "teacher.path", self.path,
              "null when teacher.stage or teacher.experiment is set (one source)")
        check(not self.overrides or self.experiment is not None, "teacher.overrides", self.overrides,
              "empty unless teacher.experiment is set")
        check(self.model is None or self.path is not None, "teacher.model", self.model,
              "null unless teacher.path is set (it names the file's architecture)")
        # That it names a registered model is checked with the student (DistillConfig.check_plan).


@dataclass
class DistillConfig(TrainConfig):
    """Training options are the ``train`` kind's; these add the student, the teacher and the loss."""

    stage: str = "distill"
    student: str = ""  # a registered model name (required)
    student_options: dict[str, Any] = field(default_factory=dict)  # its model options, e.g. {width: 8}
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    loss: list[str] = field(default_factory=lambda: ["kd"])  # terms: kd, at, fitnets; [] = labels only (scratch)
    temperature: float = 4.0  # kd: softmax temperature T (> 0)
    alpha: float = 0.9  # kd: (1 - alpha) * CE + alpha * T^2 * KL
    beta: float = 1000.0  # at: + beta / 2 * sum over layer pairs (Zagoruyko & Komodakis use 1000)
    at_layers: list[str] = field(default_factory=list)  # at: teacher layers, e.g. [layer1, layer2, layer3]
    at_student_layers: list[str] | None = None  # at: the student's layers paired with them (null = same names)
    hint_layer: str | None = None  # fitnets: the teacher's hint layer
    guided_layer: str | None = None  # fitnets: the student's guided layer (null = same name)
    hint_epochs: int = 5  # fitnets phase 1 (student up to the guided layer + regressor, hint loss only)
    hint_lr: float | None = None  # fitnets phase 1 learning rate (null = lr)
    cache_teacher_logits: bool = True  # kd without augmentation: teacher logits once for the whole train split

    def __post_init__(self) -> None:
        super().__post_init__()
        check(all(t in LOSS_TERMS for t in self.loss) and len(set(self.loss)) == len(self.loss), "loss",
              self.loss, f"a list of distinct terms from {', '.join(LOSS_TERMS)} ([] trains on labels only)")
        check(self.temperature > 0, "temperature", self.temperature, "> 0 (Hinton et al. use 2 to 20)")
        check(0 <= self.alpha <= 1, "alpha", self.alpha, "0 <= alpha <= 1 (the weight of the KD term)")
        check(self.beta >= 0, "beta", self.beta, ">= 0")
        check("at" not in self.loss or bool(self.at_layers), "at_layers", self.at_layers,
              "at least one teacher layer when 'at' is in loss, e.g. [layer1, layer2, layer3]")
        check(self.at_student_layers is None or len(self.at_student_layers) == len(self.at_layers),
              "at_student_layers", self.at_student_layers,
              f"null or one name per at_layers entry ({self.at_layers})")
        check("fitnets" not in self.loss or self.hint_layer is not None, "hint_layer", self.hint_layer,
              "a teacher layer name when 'fitnets' is in loss, e.g. layer2")
        check("fitnets" not in self.loss or self.hint_epochs >= 1, "hint_epochs", self.hint_epochs,
              ">= 1 when 'fitnets' is in loss (phase 1 trains the student up to the guided layer)")
        check(self.hint_lr is None or self.hint_lr > 0, "hint_lr", self.hint_lr, "null or > 0")
        # The student's name, options and layer names are checked against the model zoo in check_plan.

    @property
    def method(self) -> str:
        """The results' ``method`` column: the loss terms, or ``scratch`` for labels only."""
        return "+".join(self.loss) or "scratch"

    @property
    def student_at_layers(self) -> list[str]:
        return list(self.at_student_layers if self.at_student_layers is not None else self.at_layers)

    @property
    def student_node(self) -> dict[str, Any]:
        return {"name": self.student, **self.student_options}

    changes_layer_names: ClassVar[bool] = True  # later names refer to the student
    replaces_model: ClassVar[bool] = True
    reference_candidate: ClassVar[bool] = False  # a train subclass, but its output is another model

    def output_model(self, incoming: dict[str, Any], exact: bool) -> tuple[dict[str, Any], bool]:
        return self.student_node, True

    def check_plan(self, name: str, cfg: DictConfig, plan: Plan, experiments: Experiments) -> None:
        """Checks that need the model zoo (it imports torch: ``validate`` runs them after every torch-free check)
        or the whole chain: the student's name, options and layer names, then the teacher (stage order, other
        experiments, its layer names). Still before any work; the stage runs them again."""
        from compressbench.models import check_model_config, model_names
        from compressbench.techniques.distillation.plan import check_plan, static_layers, student_layers

        models = f"a registered model: {', '.join(model_names())}"
        check(self.student in model_names(), f"{name}.student", self.student, models)
        try:
            check_model_config(self.student_node)
        except ConfigError as e:
            raise BadValue(f"{name}.student_options", self.student_options, str(e)) from None
        valid = static_layers(self.student_node)
        for key, layer in student_layers(self):
            check(layer in valid, f"{name}.{key}", layer, f"a layer of the student {self.student}: {sorted_names(valid)}")
        check(self.teacher.model is None or self.teacher.model in model_names(), f"{name}.teacher.model", self.teacher.model,
              models)
        check_plan(self, name, cfg, plan, experiments)

    def check_files(self, name: str, cfg: DictConfig, num_classes: int, in_channels: int, image_size: int) -> None:
        """A teacher file's tensor names and shapes against the teacher model it must fit."""
        if self.loss and self.teacher.path is not None:
            from compressbench.techniques.distillation.teacher import check_teacher_file

            check_teacher_file(self.teacher, f"{name}.teacher.path", cfg, num_classes, in_channels, image_size)

    def cache_salt(self, experiments: Experiments, fingerprint: str) -> str | None:
        """What the teacher and the student are, beyond this config, is part of this stage's cache key: a
        teacher file's content, or another experiment's teacher stage key (an edited experiment file trains
        another teacher); a student from outside the zoo adds its builder's source hash."""
        teacher = self.teacher_salt(experiments, fingerprint)
        from compressbench.models import SOURCES, model_identity

        if self.student not in SOURCES:  # the zoo's students: keys as they always were
            return teacher
        return json.dumps({"teacher": teacher, "student": model_identity(self.student_node)}, sort_keys=True,
                          default=str)

    def teacher_salt(self, experiments: Experiments, fingerprint: str) -> str | None:
        if self.teacher.experiment is not None:
            from compressbench.techniques.distillation.teacher import experiment_stage

            cfg, plan = experiments.compose(self.teacher.experiment, self.teacher.overrides)
            return experiments.stage_key(cfg, plan, experiment_stage(self.teacher, plan), fingerprint)
        if self.teacher.path is None:
            return None
        from compressbench.config import resolve_path
        from compressbench.infra.hashing import file_sha256

        path = resolve_path(self.teacher.path)
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


@register_stage("distill", DistillConfig, distributed=True)
def distill(artifact: Deployable, cfg: DistillConfig, env: StageEnv) -> StageResult:
    """Train ``cfg.student`` against the teacher ``cfg.teacher`` names (default: the incoming model); hand on
    the student."""
    from compressbench.engine import Diverged
    from compressbench.engine.train import train_module
    from compressbench.models import model_label
    from compressbench.runtimes import Eager, as_module
    from compressbench.techniques.distillation.run import distill_student

    cfg.check_plan(env.name, env.cfg, env.plan, env.experiments)  # cheap; validate may already have run it
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
