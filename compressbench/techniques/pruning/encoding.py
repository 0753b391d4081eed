"""A sparse encoding of a state_dict — what a pruned model would ship as — and its decoder.

Each tensor is stored in the smallest of three layouts:
  dense     the raw values;
  bitmask   one bit per element (nonzero or not), then the nonzero values;
  relative  Han et al.'s relative-index CSR: for each nonzero the gap to the previous one (one byte; a gap
            over 256 is bridged by a filler entry holding a zero value), then the values.
Values keep their dtype (no quantisation, no entropy coding: those are other stages' business), so decoding
rebuilds every tensor exactly; ``encode_verified`` checks that it does before the size is reported.

File layout (little-endian): b"CBSPARSE", u8 version, u32 tensors; per tensor u16 name length, name (UTF-8),
u8 dtype code, u8 ndim, u32 × ndim shape, u8 layout, then the layout's payload (bitmask: u32 nonzeros, bits,
values; relative: u32 entries, u8 gaps - 1, values; dense: values).
"""
from __future__ import annotations

import io
import struct
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from compressbench.runtimes.eager import encodes_itself, register_row_fields

MAGIC, VERSION = b"CBSPARSE", 1
DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int64, torch.int32, torch.int16,
          torch.int8, torch.uint8, torch.bool]
LAYOUTS = ("dense", "bitmask", "relative")
MAX_GAP = 256  # a gap of 1..256 fits one byte as gap - 1


def _raw(t: torch.Tensor) -> bytes:
    return t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def _from_raw(data: bytes, dtype: torch.dtype, n: int) -> torch.Tensor:
    if n == 0:
        return torch.zeros(0, dtype=dtype)
    return torch.frombuffer(bytearray(data), dtype=torch.uint8).view(dtype)[:n].clone()


def _payloads(t: torch.Tensor, layouts: Sequence[str]) -> dict[str, bytes]:
    """The payload of ``t`` in each of ``layouts`` that can win (only dense for non-float tensors)."""
    flat = t.detach().cpu().contiguous().reshape(-1)
    payloads = {"dense": _raw(flat)}
    if not flat.is_floating_point() or flat.numel() == 0:
        return payloads
    nonzero = flat != 0
    nnz, size = int(nonzero.sum()), flat.element_size()
    if "bitmask" in layouts and flat.numel() / 8 + nnz * size < flat.numel() * size:
        bits = np.packbits(nonzero.numpy()).tobytes()
        payloads["bitmask"] = struct.pack("<I", nnz) + bits + _raw(flat[nonzero])
    if "relative" in layouts and nnz * (1 + size) < flat.numel() * size:
        positions = torch.nonzero(nonzero).flatten().numpy()
        gaps = np.diff(positions, prepend=-1).astype(np.int64)
        fillers = (gaps - 1) // MAX_GAP
        entries = nnz + int(fillers.sum())
        steps = np.full(entries, MAX_GAP, dtype=np.int64)
        real = np.cumsum(fillers + 1) - 1  # where each nonzero's own entry lands after its fillers
        steps[real] = gaps - fillers * MAX_GAP
        full = torch.zeros(entries, dtype=flat.dtype)
        full[torch.from_numpy(real)] = flat[nonzero]
        payloads["relative"] = struct.pack("<I", entries) + (steps - 1).astype(np.uint8).tobytes() + _raw(full)
    return payloads


@dataclass
class Encoded:
    data: bytes
    layouts: Counter  # how many tensors went into each layout
    dense_bytes: int  # the same container with every tensor dense: what the sparse layouts are measured against


def encode(state: Mapping[str, torch.Tensor], layouts: Sequence[str] = LAYOUTS) -> Encoded:
    """Encode ``state``, each tensor in the smallest of ``layouts``.

    ``dense_bytes`` separates what the sparse layouts save from what the bare container saves over
    ``torch.save``'s zip archive (a few percent, more for tiny models).
    """
    out = io.BytesIO()
    out.write(MAGIC + struct.pack("<BI", VERSION, len(state)))
    used: Counter = Counter()
    dense = out.tell()
    for name, t in state.items():
        if t.dtype not in DTYPES:
            raise TypeError(f"cannot encode tensor {name} of dtype {t.dtype}; encodable: {DTYPES}")
        key = name.encode()
        head = struct.pack("<H", len(key)) + key + struct.pack(f"<BB{t.dim()}I", DTYPES.index(t.dtype), t.dim(),
                                                                 *t.shape)
        payloads = _payloads(t, layouts)
        layout = min(payloads, key=lambda k: len(payloads[k]))
        used[layout] += 1
        out.write(head + struct.pack("<B", LAYOUTS.index(layout)) + payloads[layout])
        dense += len(head) + 1 + len(payloads["dense"])
    return Encoded(out.getvalue(), used, dense)


def decode(data: bytes) -> dict[str, torch.Tensor]:
    """Rebuild the state_dict from ``encode``'s bytes."""
    buf = memoryview(data)
    if bytes(buf[:8]) != MAGIC:
        raise ValueError("not a compressbench sparse encoding (bad magic)")
    version, count = struct.unpack_from("<BI", buf, 8)
    if version != VERSION:
        raise ValueError(f"sparse encoding version {version}; this compressbench reads version {VERSION}")
    pos, state = 13, {}
    for _ in range(count):
        (length,) = struct.unpack_from("<H", buf, pos)
        name = bytes(buf[pos + 2:pos + 2 + length]).decode()
        pos += 2 + length
        code, ndim = struct.unpack_from("<BB", buf, pos)
        shape = struct.unpack_from(f"<{ndim}I", buf, pos + 2)
        pos += 2 + 4 * ndim
        dtype, n = DTYPES[code], int(np.prod(shape, dtype=np.int64))
        size = torch.empty(0, dtype=dtype).element_size()
        layout = LAYOUTS[buf[pos]]
        pos += 1
        if layout == "dense":
            flat = _from_raw(bytes(buf[pos:pos + n * size]), dtype, n)
            pos += n * size
        else:
            (k,) = struct.unpack_from("<I", buf, pos)
            pos += 4
            flat = torch.zeros(n, dtype=dtype)
            if layout == "bitmask":
                nbytes = (n + 7) // 8
                mask = np.unpackbits(np.frombuffer(buf[pos:pos + nbytes], dtype=np.uint8))[:n].astype(bool)
                pos += nbytes
                flat[torch.from_numpy(mask)] = _from_raw(bytes(buf[pos:pos + k * size]), dtype, k)
            else:
                steps = np.frombuffer(buf[pos:pos + k], dtype=np.uint8).astype(np.int64) + 1
                pos += k
                flat[torch.from_numpy(np.cumsum(steps) - 1)] = _from_raw(bytes(buf[pos:pos + k * size]), dtype, k)
            pos += k * size
        state[name] = flat.reshape(shape)
    return state


def encode_verified(state: Mapping[str, torch.Tensor]) -> tuple[Encoded, bool]:
    """Encode, decode again and compare every tensor (values, dtype, shape): (encoding, verified)."""
    encoded = encode(state)
    back = decode(encoded.data)
    ok = list(back) == list(state) and all(
        back[k].dtype == t.dtype and back[k].shape == t.shape and torch.equal(back[k], t.detach().cpu())
        for k, t in state.items())
    return encoded, ok


# A model this sparse (or sparser) is worth shipping encoded: below it the dense state_dict is the artifact.
SPARSE_ENOUGH = 0.1


@register_row_fields
def sparse_encoding_fields(module: torch.nn.Module) -> dict[str, Any]:
    """``encoded_bytes`` of a sparse eager model on every row that measures it (a finetune after a prune keeps
    its zeros, so its encoded size is what it would ship): the verified encoding, or nothing if not sparse."""
    if encodes_itself(module):
        return {}  # e.g. weight sharing: the Deep Compression file (cluster / encode rows) is its encoding
    state = module.state_dict()
    weights = [t for k, t in state.items() if k.endswith("weight") and t.dim() > 1 and t.is_floating_point()]
    total = sum(t.numel() for t in weights)
    zeros = sum(int((t == 0).sum()) for t in weights)
    if not total or zeros / total < SPARSE_ENOUGH:
        return {}
    encoded, ok = encode_verified(state)
    return {"encoded_bytes": len(encoded.data), "encode_verified": ok} if ok else {}
