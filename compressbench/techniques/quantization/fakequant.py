"""Low-bit weights (8, 4, 2 bits) by fake quantization, and their honest packed encoding.

Each conv/linear weight is quantized per output channel onto ``2**bits`` evenly spaced levels (affine: the
range always includes 0, so pruned zeros stay exactly zero). Training sees the quantized weights in the forward
pass and passes gradients straight through to the fp32 shadow weights (straight-through estimator). At the end
the weights are snapped onto their grid and the layers become plain ``nn.Conv2d``/``nn.Linear`` again: no
runtime here has 4- or 2-bit kernels, so the model runs in fp32 and only ``encoded_bytes`` shows the saving.
That encoding is real: ``encode`` packs the integer codes ``bits`` per value next to per-channel scales and
zero points and every other float tensor, and ``decode`` reads it back.
"""
from __future__ import annotations

import json
import struct
from collections.abc import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

_MAGIC = b"CBQW1"


def qparams(w: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-output-channel (scale, zero point) of an affine ``bits``-bit grid covering [min(w, 0), max(w, 0)]."""
    flat = w.detach().reshape(w.shape[0], -1)
    lo = flat.min(1).values.clamp(max=0)
    hi = flat.max(1).values.clamp(min=0)
    levels = 2**bits - 1
    scale = ((hi - lo) / levels).clamp(min=1e-12)
    zero = torch.round(-lo / scale).clamp(0, levels)
    return scale, zero


def codes(w: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(integer codes in [0, 2**bits), scale, zero point) of ``w``."""
    scale, zero = qparams(w, bits)
    shape = (-1,) + (1,) * (w.dim() - 1)
    q = torch.clamp(torch.round(w.detach() / scale.view(shape)) + zero.view(shape), 0, 2**bits - 1)
    return q, scale, zero


def fake_quant(w: torch.Tensor, bits: int) -> torch.Tensor:
    """``w`` on its grid in the forward pass; identity gradient (straight-through) in the backward pass."""
    q, scale, zero = codes(w, bits)
    shape = (-1,) + (1,) * (w.dim() - 1)
    snapped = (q - zero.view(shape)) * scale.view(shape)
    return w + (snapped - w).detach()


class FakeQuantConv2d(nn.Conv2d):
    weight_bits: int

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, fake_quant(self.weight, self.weight_bits), self.bias)


class FakeQuantLinear(nn.Linear):
    weight_bits: int

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, fake_quant(self.weight, self.weight_bits), self.bias)


_SWAP = {nn.Conv2d: FakeQuantConv2d, nn.Linear: FakeQuantLinear}


def _skipped(name: str, skip: Iterable[str]) -> bool:
    return any(name == s or name.startswith(s + ".") for s in skip)


def attach_(model: nn.Module, bits: int, skip: Iterable[str] = ()) -> list[str]:
    """Make every conv/linear layer (but ``skip``) fake-quantize its weight; returns the layer names.

    The class is swapped in place, so parameters, optimizer state and hooks stay the same objects.
    """
    names = []
    for name, module in model.named_modules():
        cls = _SWAP.get(type(module))
        if cls is not None and not _skipped(name, skip):
            module.__class__ = cls
            module.weight_bits = bits
            names.append(name)
    return names


@torch.no_grad()
def bake_(model: nn.Module) -> None:
    """Snap each fake-quantized weight onto its grid and turn the layer back into a plain conv/linear."""
    plain = {v: k for k, v in _SWAP.items()}
    for module in model.modules():
        if type(module) in plain:
            module.weight.copy_(fake_quant(module.weight, module.weight_bits))
            module.__class__ = plain[type(module)]
            del module.weight_bits


def pack(values: np.ndarray, bits: int) -> bytes:
    """Unsigned ``bits``-bit integers (bits in 2, 4, 8), ``8 // bits`` per byte, first value in the low bits."""
    per = 8 // bits
    v = np.asarray(values, dtype=np.uint8).ravel()
    v = np.concatenate([v, np.zeros((-len(v)) % per, np.uint8)]).reshape(-1, per)
    shifts = (np.arange(per, dtype=np.uint8) * bits).astype(np.uint8)
    return np.bitwise_or.reduce(v << shifts, axis=1).astype(np.uint8).tobytes()


def unpack(data: bytes, bits: int, count: int) -> np.ndarray:
    per = 8 // bits
    b = np.frombuffer(data, dtype=np.uint8)[:, None]
    shifts = (np.arange(per, dtype=np.uint8) * bits).astype(np.uint8)
    return ((b >> shifts) & (2**bits - 1)).astype(np.uint8).ravel()[:count]


def encode(model: nn.Module, layers: dict[str, int]) -> bytes:
    """The model's inference tensors in a compact file: ``layers`` (name → bits) weights as packed codes plus
    fp32 scales and uint8 zero points per channel; every other floating tensor as fp32. Integer buffers
    (BatchNorm's batch counter) are not needed for inference and are left out."""
    header: list[dict] = []
    blobs: list[bytes] = []
    for key, t in model.state_dict().items():
        name = key.rsplit(".", 1)[0]
        if key.endswith(".weight") and name in layers:
            bits = layers[name]
            q, scale, zero = codes(t.float().cpu(), bits)
            parts = [pack(q.numpy().astype(np.uint8), bits), scale.numpy().astype(np.float32).tobytes(),
                     zero.numpy().astype(np.uint8).tobytes()]
            header.append({"key": key, "shape": list(t.shape), "bits": bits, "sizes": [len(p) for p in parts]})
            blobs += parts
        elif t.is_floating_point():
            data = t.detach().float().cpu().numpy().tobytes()
            header.append({"key": key, "shape": list(t.shape), "bits": 32, "sizes": [len(data)]})
            blobs.append(data)
    head = json.dumps(header, separators=(",", ":")).encode()
    return _MAGIC + struct.pack("<I", len(head)) + head + b"".join(blobs)


def decode(data: bytes) -> dict[str, torch.Tensor]:
    """The fp32 tensors ``encode`` stored (quantized weights dequantized from their codes)."""
    if not data.startswith(_MAGIC):
        raise ValueError("not a compressbench low-bit weight file")
    (n,) = struct.unpack_from("<I", data, len(_MAGIC))
    offset = len(_MAGIC) + 4
    header = json.loads(data[offset:offset + n])
    offset += n
    out = {}
    for entry in header:
        parts = []
        for size in entry["sizes"]:
            parts.append(data[offset:offset + size])
            offset += size
        shape, count = entry["shape"], int(np.prod(entry["shape"]))
        if entry["bits"] == 32:
            out[entry["key"]] = torch.from_numpy(np.frombuffer(parts[0], np.float32).copy()).view(shape)
            continue
        q = torch.from_numpy(unpack(parts[0], entry["bits"], count).astype(np.float32)).view(shape)
        scale = torch.from_numpy(np.frombuffer(parts[1], np.float32).copy())
        zero = torch.from_numpy(np.frombuffer(parts[2], np.uint8).astype(np.float32))
        view = (-1,) + (1,) * (len(shape) - 1)
        out[entry["key"]] = (q - zero.view(view)) * scale.view(view)
    return out
