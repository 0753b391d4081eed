"""The options of the ``distill`` stage kind: the student, the teacher and the loss (values and their range
checks only; ``stages/distill.py`` declares the kind, ``techniques.distillation`` does the work). Imports no
torch."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from compressbench.config.schema import check
from compressbench.config.train import TrainConfig

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
        # That it names a registered model is checked with the student (``stages.distill.check_distill``).


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
        # The student's name, options and layer names are checked against the model zoo in
        # ``stages.distill.check_distill`` (the kind's plan check).

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
