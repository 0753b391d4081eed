"""The Deep Compression file (Han et al. 2016 §2-4): writer, reader, and the per-layer table of their Tables 2-5.

Each conv/linear weight named by the writer's caller is stored as
  relative indices  the gap from one nonzero weight to the next in ``index_bits`` bits; a gap too long for them
                    is bridged by filler entries (the largest symbol, 2^b - 1, advances 2^b - 1 positions and
                    carries no weight: Han's "filler zero", without spending weight bits on the zero);
  codebook          the layer's distinct nonzero values (float32), at most 256;
  weight indices    each nonzero weight's index into the codebook (``weight_bits`` = ceil(log2 of its size));
then the gaps and the weight indices are Huffman coded (``huffman``: one canonical code per stream, built from
the stream's own counts). A layer without zeros skips the indices; one with more than 256 distinct values
(not clustered) keeps its values raw (float32). Every other tensor of the state_dict (biases, BatchNorm, layers
not named) goes into an embedded ``pruning.encoding`` container, exactly. Decoding rebuilds every tensor
exactly, value for value; in the coded weights a -0.0 comes back as 0.0 (a zero is a zero: it is not stored).

Layout (little-endian): b"CBDEEPC1", u8 version, u16 block, u32 layers; per layer: u16 name length, name,
u8 ndim, u32 × ndim shape, u8 flags (1 sparse, 2 codebook), u8 index bits, u8 weight bits, u32 nonzeros,
[u16 codebook size, f32 × size], [gap stream], [weight stream | f32 × nonzeros]; then u32 length + the container.
A stream: u32 symbols, code lengths (4 bits per symbol of the alphabet), u32 bits, [u16 × (blocks - 1) block
bits when bits > 0], data.
"""
from __future__ import annotations

import io
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from compressbench.techniques.deepcompression import huffman
from compressbench.techniques.pruning import encoding as sparse

MAGIC, VERSION = b"CBDEEPC1", 1
SPARSE, CODEBOOK = 1, 2
MAX_CODEBOOK = huffman.MAX_ALPHABET


@dataclass
class Encoded:
    data: bytes
    layers: list[dict[str, Any]] = field(default_factory=list)  # per-layer accounting (``layer_table``)
    other_bytes: int = 0  # the container of every other tensor
    other_dense_bytes: int = 0  # those tensors' raw bytes


def _stream_bytes(s: huffman.Stream, alphabet: int) -> bytes:
    nibbles = np.zeros(alphabet + alphabet % 2, dtype=np.uint8)
    nibbles[:alphabet] = s.lengths
    head = struct.pack("<I", s.count) + (nibbles[0::2] << 4 | nibbles[1::2]).tobytes() + struct.pack("<I", s.bits)
    blocks = s.block_bits[:-1].astype("<u2").tobytes() if s.bits else b""
    return head + blocks + s.data


def _read_stream(buf: memoryview, pos: int, alphabet: int, block: int) -> tuple[huffman.Stream, int]:
    (count,) = struct.unpack_from("<I", buf, pos)
    pos += 4
    packed = np.frombuffer(buf[pos:pos + (alphabet + 1) // 2], dtype=np.uint8)
    lengths = np.stack([packed >> 4, packed & 0xF], axis=1).reshape(-1)[:alphabet].astype(np.int64)
    pos += len(packed)
    (bits,) = struct.unpack_from("<I", buf, pos)
    pos += 4
    nblocks = -(-count // block)
    if bits:
        head = np.frombuffer(buf[pos:pos + 2 * (nblocks - 1)], dtype="<u2").astype(np.int64)
        pos += 2 * (nblocks - 1)
        block_bits = np.append(head, bits - head.sum()).astype(np.uint16)
    else:
        block_bits = np.zeros(nblocks, dtype=np.uint16)
    nbytes = -(-bits // 8)
    data = bytes(buf[pos:pos + nbytes])
    return huffman.Stream(lengths, count, bits, block_bits, data), pos + nbytes


def gap_symbols(positions: np.ndarray, index_bits: int) -> np.ndarray:
    """Relative-index symbols of the sorted nonzero ``positions``: gap - 1, with fillers for long gaps."""
    bound = (1 << index_bits) - 1  # the filler symbol; real gaps are 1..bound
    gaps = np.diff(positions, prepend=-1)
    fillers = (gaps - 1) // bound
    symbols = np.full(len(gaps) + int(fillers.sum()), bound, dtype=np.int64)
    symbols[np.cumsum(fillers + 1) - 1] = gaps - fillers * bound - 1
    return symbols


def positions_of(symbols: np.ndarray, index_bits: int) -> np.ndarray:
    """Inverse of ``gap_symbols``."""
    bound = (1 << index_bits) - 1
    steps = np.where(symbols == bound, bound, symbols + 1)
    return (np.cumsum(steps) - 1)[symbols != bound]


def _encode_layer(name: str, w: torch.Tensor, index_bits: int, block: int) -> tuple[bytes, dict[str, Any]]:
    flat = w.detach().cpu().reshape(-1).numpy()
    n = flat.size
    positions = np.flatnonzero(flat)
    nnz = len(positions)
    values = flat[positions]
    codebook = np.unique(values)
    coded = 0 < len(codebook) <= MAX_CODEBOOK
    is_sparse = nnz < n
    key = name.encode()
    out = io.BytesIO()
    out.write(struct.pack("<H", len(key)) + key + struct.pack(f"<B{w.dim()}I", w.dim(), *w.shape))
    weight_bits = max(1, math.ceil(math.log2(len(codebook)))) if coded else 32
    out.write(struct.pack("<BBBI", SPARSE * is_sparse | CODEBOOK * coded, index_bits if is_sparse else 0,
                          weight_bits, nnz))
    entries = gap_bits = 0
    if coded:
        out.write(struct.pack("<H", len(codebook)) + codebook.astype("<f4").tobytes())
    if is_sparse:
        symbols = gap_symbols(positions, index_bits)
        entries = len(symbols)
        gaps = huffman.encode(symbols, 1 << index_bits, block)
        gap_bits = gaps.bits
        out.write(_stream_bytes(gaps, 1 << index_bits))
    if coded:
        weights = huffman.encode(np.searchsorted(codebook, values), len(codebook), block)
        weight_stream_bits = weights.bits
        out.write(_stream_bytes(weights, len(codebook)))
    else:
        weight_stream_bits = 32 * nnz
        out.write(values.astype("<f4").tobytes())
    record = out.getvalue()
    codebook_bits = 32 * len(codebook) if coded else 0
    index_cost = entries * index_bits if is_sparse else 0
    stats = {
        "layer": name, "weights": n, "nonzero": nnz, "weights_kept_pct": 100.0 * nnz / n if n else 0.0,
        "codebook_size": len(codebook) if coded else None, "weight_bits": weight_bits,
        "weight_bits_huffman": weight_stream_bits / nnz if nnz else 0.0,
        "index_bits": index_bits if is_sparse else 0, "index_entries": entries,
        "index_bits_huffman": gap_bits / nnz if nnz else 0.0,
        "bytes_dense": 4 * n,
        "bytes_p": (32 * nnz + index_cost) / 8 if is_sparse else 4 * n,
        "bytes_pq": (weight_bits * nnz + codebook_bits + index_cost) / 8,
        "bytes_pqh": len(record),
    }
    return record, stats


def encode_state(state: Mapping[str, torch.Tensor], index_bits: Mapping[str, int], block: int = 1024) -> Encoded:
    """Encode ``state``; the float32 tensors named in ``index_bits`` (conv/linear weights) in Han's format."""
    layers = {k: b for k, b in index_bits.items() if k in state and state[k].dtype == torch.float32}
    out = io.BytesIO()
    out.write(MAGIC + struct.pack("<BHI", VERSION, block, len(layers)))
    table = []
    for name, bits in layers.items():
        record, stats = _encode_layer(name, state[name], bits, block)
        out.write(record)
        table.append(stats)
    rest = {k: v.detach().cpu() for k, v in state.items() if k not in layers}
    other = sparse.encode(rest).data
    out.write(struct.pack("<I", len(other)) + other)
    return Encoded(out.getvalue(), table, len(other), sum(t.numel() * t.element_size() for t in rest.values()))


def decode_state(data: bytes) -> dict[str, torch.Tensor]:
    """Rebuild the state_dict from ``encode_state``'s bytes (all Huffman streams decoded together)."""
    buf = memoryview(data)
    if bytes(buf[:8]) != MAGIC:
        raise ValueError("not a compressbench Deep Compression file (bad magic)")
    version, block, count = struct.unpack_from("<BHI", buf, 8)
    if version != VERSION:
        raise ValueError(f"Deep Compression file version {version}; this compressbench reads version {VERSION}")
    pos, layers, streams = 15, [], []
    for _ in range(count):
        (length,) = struct.unpack_from("<H", buf, pos)
        name = bytes(buf[pos + 2:pos + 2 + length]).decode()
        pos += 2 + length
        ndim = buf[pos]
        shape = struct.unpack_from(f"<{ndim}I", buf, pos + 1)
        pos += 1 + 4 * ndim
        flags, bits, _, nnz = struct.unpack_from("<BBBI", buf, pos)
        pos += 7
        layer: dict[str, Any] = {"name": name, "shape": shape, "flags": flags, "bits": bits, "nnz": nnz}
        if flags & CODEBOOK:
            (k,) = struct.unpack_from("<H", buf, pos)
            layer["codebook"] = np.frombuffer(buf[pos + 2:pos + 2 + 4 * k], dtype="<f4")
            pos += 2 + 4 * k
        if flags & SPARSE:
            layer["gaps"] = len(streams)
            stream, pos = _read_stream(buf, pos, 1 << bits, block)
            streams.append(stream)
        if flags & CODEBOOK:
            layer["weights"] = len(streams)
            stream, pos = _read_stream(buf, pos, len(layer["codebook"]), block)
            streams.append(stream)
        else:
            layer["values"] = np.frombuffer(buf[pos:pos + 4 * nnz], dtype="<f4")
            pos += 4 * nnz
        layers.append(layer)
    (length,) = struct.unpack_from("<I", buf, pos)
    state = sparse.decode(bytes(buf[pos + 4:pos + 4 + length]))
    symbols = huffman.decode(streams, block)
    for layer in layers:
        n = math.prod(layer["shape"])
        values = (layer["codebook"][symbols[layer["weights"]]] if "weights" in layer else layer["values"])
        flat = np.zeros(n, dtype=np.float32)
        if "gaps" in layer:
            flat[positions_of(symbols[layer["gaps"]], layer["bits"])] = values
        else:
            flat[:] = values
        state[layer["name"]] = torch.from_numpy(flat).reshape(layer["shape"])
    return state


def same_state(decoded: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor]) -> bool:
    """Every tensor of ``state`` decoded bit for bit (names, dtypes, shapes, values)."""
    return set(decoded) == set(state) and all(
        decoded[k].dtype == t.dtype and decoded[k].shape == t.shape and torch.equal(decoded[k], t.detach().cpu())
        for k, t in state.items())


def layer_table(encoded: Encoded) -> list[dict[str, Any]]:
    """Han et al.'s Tables 2-5 for this file: per layer, then the total (other tensors and headers included).

    Ratios are dense float32 bytes over the bytes after pruning (P: float32 values + relative indices), after
    quantization by weight sharing (P+Q: weight indices + indices + codebook) and after Huffman coding (P+Q+H:
    the layer's record in the file, headers and code tables included). The total row's P+Q+H is the file.
    """
    rows = [dict(r) for r in encoded.layers]
    total: dict[str, Any] = {"layer": "total"}
    for key in ("weights", "nonzero", "index_entries", "bytes_dense", "bytes_p", "bytes_pq"):
        total[key] = sum(r[key] for r in rows)
    total["bytes_dense"] += encoded.other_dense_bytes
    total["bytes_p"] += encoded.other_bytes
    total["bytes_pq"] += encoded.other_bytes
    total["bytes_pqh"] = len(encoded.data)
    total["weights_kept_pct"] = 100.0 * total["nonzero"] / total["weights"] if total["weights"] else 0.0
    kept = total["nonzero"] or 1
    total["weight_bits"] = sum(r["weight_bits"] * r["nonzero"] for r in rows) / kept
    total["weight_bits_huffman"] = sum(r["weight_bits_huffman"] * r["nonzero"] for r in rows) / kept
    total["index_bits_huffman"] = sum(r["index_bits_huffman"] * r["nonzero"] for r in rows) / kept
    for row in [*rows, total]:
        for step in ("p", "pq", "pqh"):
            row[f"ratio_{step}"] = row["bytes_dense"] / row[f"bytes_{step}"] if row[f"bytes_{step}"] else None
    return [*rows, total]
