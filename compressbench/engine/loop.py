"""The one training engine: ``train_one_epoch``, ``evaluate`` and ``fit``, shared by train, finetune and distill.

``fit`` takes a ``criterion(logits, targets, inputs, index)`` (``index``: the samples' positions in the split
when the loader gives them, else None) so distillation can add its teacher terms without a second loop, and
``callbacks`` so pruning schedules can act between optimizer steps. Every train stage keeps the zeros a model
comes in with (``KeepSparsity``), so pruned weights stay pruned through finetuning.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from compressbench.infra import distributed, signals
from compressbench.measure.accuracy import evaluate

if TYPE_CHECKING:
    from compressbench.config.train import TrainConfig
    from compressbench.engine.checkpoint import Checkpoint

Criterion = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]
Batches = Iterable[tuple[torch.Tensor, ...]]  # (inputs, targets) or (inputs, targets, sample index)


class Callback:
    """Hooks into ``fit``; override what you need. ``step`` counts optimizer steps from 0 across epochs."""

    def on_train_begin(self, model: nn.Module, steps_per_epoch: int, epochs: int) -> None:
        pass

    def after_step(self, model: nn.Module, step: int) -> None:
        pass

    def on_epoch_end(self, model: nn.Module, epoch: int) -> None:
        pass


class KeepSparsity(Callback):
    """Re-zero, after every optimizer step, the conv/linear weights that were exactly zero at the start.

    A trained dense model has no exact zeros, so this only acts on pruned models; re-zeroing the weight (not
    only its gradient) also undoes what momentum and weight decay would otherwise grow back.
    """

    def __init__(self) -> None:
        self.masks: list[tuple[torch.Tensor, torch.Tensor]] = []

    def on_train_begin(self, model: nn.Module, steps_per_epoch: int, epochs: int) -> None:
        self.masks = []
        for m in model.modules():
            w = getattr(m, "weight", None)
            if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)) and isinstance(w, torch.Tensor):
                mask = w.detach() != 0
                if not bool(mask.all()):
                    self.masks.append((w, mask))

    @torch.no_grad()
    def after_step(self, model: nn.Module, step: int) -> None:
        for w, mask in self.masks:
            w.mul_(mask)


class Diverged(RuntimeError):
    """The loss became non-finite; the model holds the weights of the last good epoch. ``record`` holds
    results fields to keep (the epoch it happened in)."""

    def __init__(self, message: str, record: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.record = dict(record or {})


@dataclass
class Precision:
    """Autocast dtype and grad scaler for one device (AMP on CUDA: bf16 where supported, else fp16)."""

    device_type: str
    dtype: torch.dtype | None = None
    scaler: torch.amp.GradScaler | None = None

    @classmethod
    def for_device(cls, device: torch.device, amp: str) -> Precision:
        if amp == "off" or (amp == "auto" and device.type != "cuda"):
            return cls(device.type)
        if amp == "bf16" or (amp == "auto" and torch.cuda.is_bf16_supported()):
            return cls(device.type, torch.bfloat16)
        return cls(device.type, torch.float16, torch.amp.GradScaler(device.type))

    def fresh(self) -> Precision:
        """The same precision with a new grad scaler (a new training starts at the initial loss scale)."""
        scaler = torch.amp.GradScaler(self.device_type) if self.scaler is not None else None
        return Precision(self.device_type, self.dtype, scaler)

    def autocast(self) -> AbstractContextManager:
        if self.dtype is None:
            return nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    @property
    def name(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"runtime.device={name} but CUDA is not available here; use runtime.device=auto or cpu")
    return device


def cross_entropy(label_smoothing: float = 0.0) -> Criterion:
    def criterion(logits: torch.Tensor, targets: torch.Tensor, inputs: torch.Tensor,
                  index: torch.Tensor | None = None) -> torch.Tensor:
        return F.cross_entropy(logits.float(), targets, label_smoothing=label_smoothing)

    return criterion


def train_one_epoch(model: nn.Module, batches: Batches, optimizer: torch.optim.Optimizer, criterion: Criterion, *,
                    precision: Precision, scheduler: Any = None, grad_clip: float | None = None,
                    progress: Any = None, callbacks: tuple[Callback, ...] = (), first_step: int = 0,
                    collective: bool = False) -> dict[str, float]:
    """One pass over ``batches``; raises Diverged on a non-finite loss. Returns loss, accuracy, images/s.

    ``model`` may be a DistributedDataParallel and/or ``torch.compile`` wrapper; callbacks always get the model
    inside (their layer names are the user's). ``collective``: every rank runs this loop, so the divergence check is agreed.
    """
    model.train()
    inner = getattr(model, "_orig_mod", model)  # torch.compile's wrapper; then DDP's
    inner = getattr(inner, "module", inner)
    device = next(model.parameters()).device
    # Sums stay on the device; a host sync per step would stall a GPU, so there we check every few steps;
    # under torchrun the check is a collective (all ranks stop together), so it is rarer there too.
    check_every = 25 if device.type != "cpu" else 10 if collective else 1

    def bad(value: float) -> bool:
        return distributed.any_rank(not math.isfinite(value), device) if collective else not math.isfinite(value)

    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    start = time.perf_counter()
    for step, (x, y, *index) in enumerate(batches):
        with precision.autocast():
            logits = model(x)
            loss = criterion(logits, y, x, index[0] if index else None)
        optimizer.zero_grad(set_to_none=True)
        if precision.scaler is not None:
            precision.scaler.scale(loss).backward()
            if grad_clip:
                precision.scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            precision.scaler.step(optimizer)
            precision.scaler.update()
        else:
            loss.backward()
            if grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
        if scheduler is not None:
            scheduler.step()
        for cb in callbacks:
            cb.after_step(inner, first_step + step)
        loss_sum += loss.detach() * len(y)
        correct += (logits.detach().argmax(1) == y).sum()
        seen += len(y)
        if step % check_every == 0 and bad(loss_sum.item()):
            raise Diverged(f"{loss.item()} at step {step + 1}")
        if progress is not None:
            progress.update(1)
        signals.boundary()  # a SIGINT / SIGTERM that came during this batch stops here (infra.signals)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    total = loss_sum.item()
    if bad(total):
        raise Diverged(f"mean {total / max(seen, 1)}")
    return {"train_loss": total / max(seen, 1), "train_acc": 100.0 * correct.item() / max(seen, 1),
            "seconds": seconds, "images_per_s": seen / seconds if seconds > 0 else float("nan")}


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                               weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int) -> Any:
    """A per-step LambdaLR: linear warm-up, then cosine / multistep / constant."""
    total = max(cfg.epochs * steps_per_epoch, 1)
    warmup = int(cfg.warmup_epochs * steps_per_epoch)
    milestones = [int(m * steps_per_epoch) for m in cfg.milestones]

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if cfg.scheduler == "cosine":
            progress = (step - warmup) / max(total - warmup, 1)
            return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
        if cfg.scheduler == "multistep":
            return cfg.gamma ** sum(step >= m for m in milestones)
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@dataclass
class Loaders:
    """The batches one training reads: shuffled training batches and the validation batches."""

    train: Any  # TensorLoader (has set_epoch and len)
    val: Batches


@dataclass
class Fitted:
    """What ``fit`` returns: the trained model, one history row per epoch and results fields to record."""

    model: nn.Module
    history: list[dict[str, Any]]
    record: dict[str, Any]


class _NoProgress:
    def __call__(self, iterable: Any = None, **kwargs: Any) -> Any:
        from compressbench.infra.progress import bar

        return bar(iterable, enabled=False, **kwargs)


def is_channels_last(model: nn.Module) -> bool:
    """Whether ``model``'s 4-d weights are stored channels-last (and not also plainly contiguous)."""
    for p in model.parameters():
        if p.dim() == 4 and p.shape[1] > 1 and p.shape[2] * p.shape[3] > 1:
            return p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
    return False


def fit(model: nn.Module, cfg: TrainConfig, loaders: Loaders, *, precision: Precision,
        checkpoint: Checkpoint | None = None, callbacks: tuple[Callback, ...] = (),
        criterion: Criterion | None = None, progress: Any = None, collective: bool = False,
        label: str = "train", channels_last: bool = False, compile: bool = False) -> Fitted:
    """Train ``model`` for ``cfg.epochs``, evaluating on ``loaders.val`` each epoch; keep the best (or last).

    After every epoch, atomically, through ``checkpoint`` (the pipeline's store): ``history.csv`` and the full
    training state (weights, best weights, optimizer, scheduler, RNG, history), from which the same training
    of a rerun resumes — so a crash loses at most the epoch in flight. ``collective``: every torchrun rank runs
    this (the model is wrapped in DistributedDataParallel). ``label`` names the training in progress bars.
    ``channels_last``: train with channels-last weights (the loader must hand channels-last batches); the model
    leaves in the memory format it came in. ``compile``: the training steps run through ``torch.compile``.
    """
    restore_format = channels_last and not is_channels_last(model)
    if channels_last:  # in place: the Parameters (and so the optimizer's references) stay the same objects
        model.to(memory_format=torch.channels_last)
    try:
        return _fit(model, cfg, loaders, precision=precision, checkpoint=checkpoint, callbacks=callbacks,
                    criterion=criterion, progress=progress, collective=collective, label=label, compile=compile)
    finally:
        if restore_format:
            model.to(memory_format=torch.contiguous_format)


def _fit(model: nn.Module, cfg: TrainConfig, loaders: Loaders, *, precision: Precision,
         checkpoint: Checkpoint | None, callbacks: tuple[Callback, ...], criterion: Criterion | None,
         progress: Any, collective: bool, label: str, compile: bool) -> Fitted:
    criterion = criterion or cross_entropy(cfg.label_smoothing)
    progress = progress or _NoProgress()
    train_batches, val_batches = loaders.train, loaders.val
    device = next(model.parameters()).device
    optimizer = build_optimizer(model, cfg)
    scheduler = build_scheduler(optimizer, cfg, len(train_batches))
    # A fresh scaler per training: a stage must not inherit the loss scale of the one before (a cache hit
    # would not), or cached and uncached runs would differ.
    precision = precision.fresh()
    history: list[dict[str, Any]] = []
    best_acc, best_state, best_epoch = -1.0, _snapshot(model), -1
    callbacks = (KeepSparsity(), *callbacks) if cfg.keep_sparsity else tuple(callbacks)
    for cb in callbacks:
        cb.on_train_begin(model, len(train_batches), cfg.epochs)
    start = 0
    resume = checkpoint.load() if checkpoint is not None else None
    if resume is not None:
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        scheduler.load_state_dict(resume["scheduler"])
        if precision.scaler is not None and resume.get("scaler"):
            precision.scaler.load_state_dict(resume["scaler"])
        torch.set_rng_state(resume["rng"])
        if resume.get("cuda_rng") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(resume["cuda_rng"])
        history, start = resume["history"], resume["epoch"]
        best_acc, best_state, best_epoch = resume["best_acc"], resume["best_state"], resume["best_epoch"]
    last_good = _snapshot(model)
    train_model = distributed.wrap(model, device) if collective else model
    if compile:  # the compiled module shares the weights; evaluation and checkpoints use ``model`` itself
        train_model = torch.compile(train_model)
    epochs = progress(range(start, cfg.epochs), desc=f"{label} epochs", unit="epoch", initial=start,
                      total=cfg.epochs)
    record: dict[str, Any] = {}
    for epoch in epochs:
        signals.at(f"epoch {epoch + 1} of {cfg.epochs}")  # what a stop says
        train_batches.set_epoch(epoch)
        bar = progress(total=len(train_batches), desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch",
                       leave=False)
        try:
            with signals.batch_boundaries():  # SIGINT / SIGTERM stop between batches; the finished epochs are kept
                stats = train_one_epoch(train_model, train_batches, optimizer, criterion, precision=precision,
                                        scheduler=scheduler, grad_clip=cfg.grad_clip, progress=bar,
                                        callbacks=callbacks, first_step=epoch * len(train_batches),
                                        collective=collective)
        except Diverged as e:
            model.load_state_dict(last_good)
            raise Diverged(f"non-finite loss in epoch {epoch + 1} ({e}); the model keeps the weights it had "
                           f"before that epoch. Lower {label}.lr or set {label}.grad_clip",
                           record={"diverged_epoch": epoch + 1}) from None
        finally:
            bar.close()
        for cb in callbacks:
            cb.on_epoch_end(model, epoch)
        val = evaluate(model, val_batches, precision=precision, topk=(1,))
        history.append({"stage": label, "epoch": epoch + 1, **stats, "val_loss": val["loss"],
                        "val_acc": val["top1"], "lr": optimizer.param_groups[0]["lr"]})
        epochs.set_postfix(loss=f"{stats['train_loss']:.3f}", val_acc=f"{val['top1']:.1f}")
        last_good = _snapshot(model)
        # Without a val split (val_fraction=0) there is nothing to select on: the last epoch is kept.
        if val["top1"] > best_acc or math.isnan(val["top1"]):
            best_acc, best_state, best_epoch = val["top1"], last_good, epoch + 1
        if checkpoint is not None:  # one write per epoch: everything a rerun needs to go on
            checkpoint.save({
                "epoch": epoch + 1, "model": last_good, "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "rng": torch.get_rng_state(), "history": history,
                "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                "best_acc": best_acc, "best_state": best_state, "best_epoch": best_epoch,
                "scaler": precision.scaler.state_dict() if precision.scaler is not None else None,
            })
            checkpoint.history(history)
    signals.at(None)
    if checkpoint is not None and history:
        checkpoint.finish(best_state, last_good)
    if cfg.epochs and cfg.keep == "best":
        model.load_state_dict(best_state)
    if cfg.epochs:
        record = {"best_epoch": best_epoch if cfg.keep == "best" else cfg.epochs,
                  # the median epoch: one epoch slowed by a busy machine is not the training's speed
                  "train_images_per_s": torch.tensor([h["images_per_s"] for h in history],
                                                     dtype=torch.float64).nanquantile(0.5).item(),
                  "resumed_from_epoch": start or None}
    return Fitted(model, history, record)
