"""The training route: precision, memory format and compilation, chosen for the device and the model.

``runtime.amp``, ``runtime.channels_last`` and ``runtime.compile`` each default to ``auto``, which picks what the
device supports and what measured faster (``scripts/bench_train.py``, findings/benchmarks/bench_train.csv):

- CUDA: bf16 autocast (fp16 + grad scaler where bf16 is missing), channels-last weights and batches everywhere,
  ``torch.compile``.
- CPU, models with convolutions: channels-last *while training* (1.28× fp32 on ResNet-20), plus bf16 autocast
  where the CPU computes bf16 natively (AVX-512 BF16 or AMX) — the ResNet-20 train stage then runs 2.13× a bare
  eager fp32 loop on 2 cores. bf16 without channels-last is slower than fp32 on LeNet-5 (0.59×), so auto never
  picks it alone. Compile is off: an earlier probe found compile + bf16 + channels-last no faster (1.91× vs
  1.98×) after 13-18 s of compilation per training.
- CPU, models without convolutions (MLPs): fp32, contiguous, eager.

Only precision changes the numbers enough to be part of the cache key (``pipeline.keys``); memory format and
compilation change summation order only and are recorded in every row (``train_route``).
"""
from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from compressbench.engine.loop import Precision


@dataclass(frozen=True)
class TrainRoute:
    """How a training runs: autocast ``precision``, ``channels_last`` weights and batches, ``compile``."""

    precision: Precision
    channels_last: bool = False
    compile: bool = False

    @property
    def name(self) -> str:
        """e.g. ``bf16+channels_last``; ``fp32`` for the plain eager route."""
        return "+".join([self.precision.name] + ["channels_last"] * self.channels_last + ["compile"] * self.compile)

    @classmethod
    def plain(cls, device: torch.device) -> TrainRoute:
        """Eager fp32 in the default memory format (QAT's fake-quant observers need fp32)."""
        return cls(Precision(device.type))


@functools.lru_cache(maxsize=1)
def cpu_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX-512 BF16 or AMX); elsewhere oneDNN emulates it, slowly."""
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:  # not Linux: no measured CPU route, stay with fp32
        return False
    return any(f" {flag}" in flags for flag in ("avx512_bf16", "amx_bf16"))


@functools.lru_cache(maxsize=64)
def _has_conv(model_json: str) -> bool:
    from compressbench.models import build_model

    cfg = json.loads(model_json)
    try:  # built on the meta device: no memory, no init cost
        with torch.device("meta"):
            model = build_model(cfg, 10, 3, 32)
    except Exception:  # a builder that computes on its weights: build it for real
        model = build_model(cfg, 10, 3, 32)
    return any(isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)) for m in model.modules())


def is_conv_net(model_cfg: Mapping[str, Any]) -> bool:
    """Whether the model the ``model`` config node names has convolutions (the kind bf16 + channels-last helps)."""
    from omegaconf import DictConfig, OmegaConf

    node = OmegaConf.to_container(model_cfg, resolve=True) if isinstance(model_cfg, DictConfig) else dict(model_cfg)
    # Weights do not change the layer types: never load (or try to download) pretrained ones to find out.
    cfg = {k: v for k, v in node.items() if k != "pretrained"}
    return _has_conv(json.dumps(cfg, sort_keys=True, default=str))  # nested options (args) stay dicts


def _flag(value: Any) -> str:
    return str(value).lower()


def choose_route(device: torch.device, amp: str, channels_last: Any, compile: Any, conv_net: bool) -> TrainRoute:
    """The route ``runtime.amp`` / ``channels_last`` / ``compile`` resolve to on ``device`` for a model with
    (``conv_net``) or without convolutions; explicit values are taken as given."""
    cuda = device.type == "cuda"
    cl = _flag(channels_last)
    use_cl = cl == "true" or (cl == "auto" and (cuda or (conv_net and device.type == "cpu")))
    if amp == "auto" and device.type == "cpu":
        # bf16 without channels-last is slower than fp32 on the CPU: the pair or neither.
        amp = "bf16" if conv_net and use_cl and cpu_native_bf16() else "off"
    precision = Precision.for_device(device, amp)
    compiled = _flag(compile) == "true" or (_flag(compile) == "auto" and cuda)
    return TrainRoute(precision, use_cl, compiled)


def route_for(device: torch.device, runtime: Any, model_cfg: Mapping[str, Any]) -> TrainRoute:
    """``choose_route`` for a run's ``runtime`` options and ``model`` config node."""
    return choose_route(device, runtime.amp, runtime.channels_last, runtime.compile, is_conv_net(model_cfg))
