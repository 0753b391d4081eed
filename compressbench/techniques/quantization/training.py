"""The quantization methods that train: QAT (fake-quant finetuning, then real int8) and low-bit weights.

Both train through ``engine.fit`` — the one training loop — so they get its model selection on val, history,
checkpoints, divergence handling and ``KeepSparsity`` (a pruned model stays pruned). They are registered in
``methods`` (``qat/fx``, ``weight_bits/eager``), which imports this module when one of them runs.
"""
from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from compressbench.adapters import torch_ao
from compressbench.config.train import TrainConfig
from compressbench.engine import Callback
from compressbench.engine.route import TrainRoute
from compressbench.engine.train import train_module
from compressbench.runtimes import Eager
from compressbench.runtimes.fx_int8 import FxInt8
from compressbench.techniques.quantization import Unsupported, fakequant
from compressbench.techniques.quantization.result import Result, fp32_cpu, need_int8, recipe_of

if TYPE_CHECKING:
    from compressbench.engine.env import StageEnv


def train_config(cfg: Any) -> TrainConfig:
    """The TrainConfig of a quantize stage's training options (validated by TrainConfig itself)."""
    return TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, optimizer=cfg.optimizer, lr=cfg.lr,
                       momentum=cfg.momentum, weight_decay=cfg.weight_decay, scheduler="cosine", augment=True,
                       keep="best", keep_sparsity=True)


class QatSchedule(Callback):
    """Freeze BatchNorm statistics, then the observed ranges, after the given epochs (torchvision's QAT recipe)."""

    def __init__(self, freeze_bn_epoch: int | None, freeze_observer_epoch: int | None) -> None:
        self.freeze_bn_epoch, self.freeze_observer_epoch = freeze_bn_epoch, freeze_observer_epoch

    def on_epoch_end(self, model: nn.Module, epoch: int) -> None:
        if self.freeze_bn_epoch is not None and epoch + 1 >= self.freeze_bn_epoch:
            torch_ao.freeze_bn_stats(model)
        if self.freeze_observer_epoch is not None and epoch + 1 >= self.freeze_observer_epoch:
            torch_ao.freeze_observers(model)


def qat_fx(fp32: Eager, cfg: Any, env: StageEnv, batches: list[torch.Tensor]) -> Result:
    """Quantization-aware training with FX fake quantization on ``env.device``, then conversion to int8 (CPU)."""
    source_artifact = fp32_cpu(fp32)
    source, model, recipe = source_artifact.module, fp32.module, recipe_of(cfg, batches)
    try:
        prepared = torch_ao.prepare_qat(source, recipe)
    except Exception as e:  # noqa: BLE001 — tracing failures: this graph cannot go through FX
        raise Unsupported(f"FX graph mode cannot trace {type(model).__name__} for QAT: {type(e).__name__}: "
                          f"{str(e)[:400]}. Try quantize.method=static_int8 with backend=onnxruntime") from e
    prepared = prepared.to(env.device)
    # Fake quantization simulates int8 on fp32 tensors; under AMP it would be fed bf16/fp16 activations: QAT
    # trains on the plain eager fp32 route whatever the run's route is.
    info: dict[str, Any] = {"qat_precision": "fp32"} if env.precision.dtype is not None else {}
    fitted = train_module(prepared, train_config(cfg), env,
                          callbacks=(QatSchedule(cfg.freeze_bn_epoch, cfg.freeze_observer_epoch),),
                          route=TrainRoute.plain(env.device))
    converted = torch_ao.convert(fitted.model)
    report = torch_ao.fx_report(source, converted, recipe.skip)
    need_int8(report, model, "FX QAT")
    return Result(FxInt8(converted, source_artifact, recipe), report,
                  {"quant_engine": torch_ao.ENGINE, **info, **fitted.record}, history=fitted.history)


def weight_bits(fp32: Eager, cfg: Any, env: StageEnv, batches: list[torch.Tensor]) -> Result:
    """Weights on a ``cfg.weight_bits``-bit per-channel grid, finetuned ``cfg.epochs`` with the straight-through
    estimator (0 = post-training), snapped, and encoded; the encoding is decoded back and checked."""
    model = copy.deepcopy(fp32.module)
    bits = cfg.weight_bits
    layers = fakequant.attach_(model, bits, cfg.skip)
    if not layers:
        raise Unsupported(f"weight_bits quantizes Conv2d and Linear weights; {type(model).__name__} has none "
                          "outside quantize.skip")
    history: list[dict[str, Any]] = []
    info: dict[str, Any] = {}
    if cfg.epochs:
        fitted = train_module(model, train_config(cfg), env)
        history, info = fitted.history, fitted.record
    fakequant.bake_(model)
    blob = fakequant.encode(model, dict.fromkeys(layers, bits))
    decoded = fakequant.decode(blob)
    for key, t in model.state_dict().items():
        if key in decoded and not torch.allclose(decoded[key], t.detach().float().cpu(), rtol=1e-5, atol=1e-7):
            raise RuntimeError(f"the {bits}-bit encoding of {key} does not decode back to the model's weights")
    report = [{"name": n, "op": type(m).__name__,
               "status": f"{bits}-bit" if n in layers else "float",
               "reason": "weights on a per-channel grid (fp32 kernels)" if n in layers
               else ("listed in quantize.skip" if isinstance(m, (nn.Conv2d, nn.Linear))
                     else "weight_bits quantizes conv/linear weights only")}
              for n, m in model.named_modules() if n and not list(m.children())]
    info.update(encoded_bytes=len(blob), weight_bits=bits, low_bit_layers=len(layers))
    return Result(Eager(model, fp32.arch), report, info, {f"weights_w{bits}.bin": blob}, history)
