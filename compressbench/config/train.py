"""The one training configuration: ``train`` stages, finetunes (``- stage@finetune: train``), a prune stage's
retraining, distill, and every technique that trains. ``engine.train.train_module`` runs it; this module imports
no torch, so configs are checked before torch is imported."""
from __future__ import annotations

from dataclasses import dataclass, field

from compressbench.config.schema import StageConfig, check


@dataclass
class TrainConfig(StageConfig):
    stage: str = "train"
    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "sgd"  # sgd | adamw
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    scheduler: str = "cosine"  # cosine | multistep | constant, stepped per batch
    milestones: list[float] = field(default_factory=lambda: [0.5, 0.75])  # multistep: epochs (may be fractional)
    gamma: float = 0.1  # multistep decay factor
    warmup_epochs: float = 0.0
    label_smoothing: float = 0.0
    grad_clip: float | None = None  # max global grad norm; None = off
    augment: bool = True  # the dataset's batch-wise augmentation (crop/flip)
    keep: str = "best"  # which weights go on down the chain: best (by val accuracy) | last
    keep_sparsity: bool = True  # weights that are exactly zero at the start stay zero (pruned models)

    def __post_init__(self) -> None:
        check(self.epochs >= 0, "epochs", self.epochs, ">= 0")
        check(self.batch_size >= 1, "batch_size", self.batch_size, ">= 1")
        check(self.optimizer in {"sgd", "adamw"}, "optimizer", self.optimizer, "sgd or adamw")
        check(self.lr > 0, "lr", self.lr, "> 0")
        check(0 <= self.momentum < 1, "momentum", self.momentum, "0 <= momentum < 1")
        check(self.weight_decay >= 0, "weight_decay", self.weight_decay, ">= 0")
        check(self.scheduler in {"cosine", "multistep", "constant"}, "scheduler", self.scheduler,
              "cosine, multistep or constant")
        check(all(m >= 0 for m in self.milestones), "milestones", self.milestones, "epochs >= 0")
        check(0 < self.gamma <= 1, "gamma", self.gamma, "0 < gamma <= 1")
        check(0 <= self.warmup_epochs <= max(self.epochs, 0), "warmup_epochs", self.warmup_epochs,
              "between 0 and epochs")
        check(0 <= self.label_smoothing < 1, "label_smoothing", self.label_smoothing, "0 <= x < 1")
        check(self.grad_clip is None or self.grad_clip > 0, "grad_clip", self.grad_clip, "null or > 0")
        check(self.keep in {"best", "last"}, "keep", self.keep, "best or last")
