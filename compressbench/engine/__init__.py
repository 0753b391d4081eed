"""The training engine shared by train, finetune, distill and every technique that trains: ``fit`` (one loop,
``engine.loop``), ``Precision`` (AMP) and the training route (``engine.route``), callbacks; ``engine.train`` runs
the one ``config.train.TrainConfig``, ``engine.checkpoint`` keeps a training's resumable state, ``engine.env`` is
the read-only ``StageEnv`` a stage works in."""
from compressbench.engine.loop import (
    Batches,
    Callback,
    Criterion,
    Diverged,
    Fitted,
    KeepSparsity,
    Loaders,
    Precision,
    build_optimizer,
    build_scheduler,
    cross_entropy,
    fit,
    resolve_device,
    train_one_epoch,
)
from compressbench.measure.accuracy import evaluate

__all__ = ["Batches", "Callback", "Criterion", "Diverged", "Fitted", "KeepSparsity", "Loaders", "Precision",
           "build_optimizer", "build_scheduler", "cross_entropy", "evaluate", "fit", "resolve_device",
           "train_one_epoch"]
