"""A canonical, length-limited Huffman coder over small alphabets (at most 256 symbols), vectorised with numpy.

Why our own and not a library: the file must store the code compactly (canonical codes need only each symbol's
code length, 4 bits here) and both directions must be fast on millions of symbols. The pure-Python coders on
the package index (dahuffman, huffman) walk symbols one by one and pickle their code tables. bitarray (a C
extension) has canonical Huffman and does fit: ``scripts/bench_huffman.py`` (1M symbols of a skewed
64-symbol alphabet, interleaved; findings/benchmarks/bench_huffman.csv) measured bitarray encoding 1.57x
faster and ours decoding 1.46x faster, sizes within 0.01%. A wash at tens of milliseconds per million
weights, so we keep this one and no extra compiled dependency; bitarray is the drop-in if encoding ever matters.

- Code lengths come from the classic Huffman merge over the symbol counts; a code longer than ``MAX_LENGTH``
  (15, so lengths fit a nibble and the decode table has 2^15 entries) is avoided by halving the counts and
  merging again — what practical coders do; it costs a fraction of a percent on skewed alphabets only.
- A symbol stream is cut into blocks of ``block`` symbols whose bit lengths are stored (u16 each), so the
  decoder walks all blocks of all streams of a file at once: ``block`` vectorised table lookups in total.
- A stream with a single distinct symbol costs no bits at all (its code length, 1, names the symbol).
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np

MAX_LENGTH = 15
MAX_ALPHABET = 256


def code_lengths(counts: np.ndarray, limit: int = MAX_LENGTH) -> np.ndarray:
    """Huffman code length of every symbol (0 for symbols that never occur; 1 for a lone symbol)."""
    counts = np.asarray(counts, dtype=np.int64)
    lengths = np.zeros(len(counts), dtype=np.int64)
    used = np.flatnonzero(counts)
    if len(used) <= 1:
        lengths[used] = 1
        return lengths
    weights = counts[used].copy()
    while True:
        # Heap of (count, tie-break, symbols under this node); each merge adds one bit to all of them.
        depth = np.zeros(len(used), dtype=np.int64)
        heap = [(int(c), i, [i]) for i, c in enumerate(weights)]
        heapq.heapify(heap)
        tie = len(heap)
        while len(heap) > 1:
            c1, _, s1 = heapq.heappop(heap)
            c2, _, s2 = heapq.heappop(heap)
            depth[s1] += 1
            depth[s2] += 1
            heapq.heappush(heap, (c1 + c2, tie, s1 + s2))
            tie += 1
        if depth.max() <= limit:
            lengths[used] = depth
            return lengths
        weights = (weights + 1) // 2  # flatten the distribution; a symbol that occurs keeps a count >= 1


def canonical_codes(lengths: np.ndarray) -> np.ndarray:
    """Canonical codes (DEFLATE's rule): shorter codes first, then by symbol; codes as integers."""
    lengths = np.asarray(lengths, dtype=np.int64)
    codes = np.zeros(len(lengths), dtype=np.int64)
    code, previous = 0, 0
    for symbol in sorted(np.flatnonzero(lengths), key=lambda s: (lengths[s], s)):
        code <<= int(lengths[symbol]) - previous
        previous = int(lengths[symbol])
        codes[symbol] = code
        code += 1
    return codes


@dataclass
class Stream:
    """One Huffman-coded stream: ``count`` symbols in ``bits`` bits; ``block_bits``: bits of each block."""

    lengths: np.ndarray  # code length per symbol of the alphabet
    count: int
    bits: int
    block_bits: np.ndarray  # uint16, one per block of ``block`` symbols
    data: bytes


def encode(symbols: np.ndarray, alphabet: int, block: int) -> Stream:
    """Huffman-code ``symbols`` (integers in 0..alphabet-1) with a code built from their own counts."""
    if not 1 <= alphabet <= MAX_ALPHABET:
        raise ValueError(f"alphabet={alphabet}: this coder handles 1..{MAX_ALPHABET} symbols")
    if block * MAX_LENGTH >= 1 << 16:
        raise ValueError(f"block={block}: a block's bit length must fit 16 bits, so block < {(1 << 16) // MAX_LENGTH}")
    symbols = np.asarray(symbols, dtype=np.int64)
    if len(symbols) and (symbols.min() < 0 or symbols.max() >= alphabet):
        raise ValueError(f"symbols outside 0..{alphabet - 1}")
    counts = np.bincount(symbols, minlength=alphabet)
    lengths = code_lengths(counts)
    blocks = -(-len(symbols) // block)
    if np.count_nonzero(counts) <= 1:  # nothing to say but the count: no bits
        return Stream(lengths, len(symbols), 0, np.zeros(blocks, np.uint16), b"")
    per_symbol = lengths[symbols]
    block_bits = np.add.reduceat(per_symbol, np.arange(0, len(symbols), block)).astype(np.uint16)
    codes = canonical_codes(lengths)[symbols]
    total = int(per_symbol.sum())
    # A code of <= 15 bits at bit offset o spans <= 3 bytes from byte o >> 3: place it in a 24-bit window
    # there and add each window byte into the output. Codes never share a bit, so the sums are ORs.
    offset = np.cumsum(per_symbol) - per_symbol
    window = codes << (24 - per_symbol - (offset & 7))
    first = offset >> 3
    nbytes = -(-total // 8)
    out = np.zeros(nbytes + 2, dtype=np.int64)
    for k, shift in enumerate((16, 8, 0)):
        out += np.bincount(first + k, weights=(window >> shift) & 0xFF, minlength=nbytes + 2).astype(np.int64)
    return Stream(lengths, len(symbols), total, block_bits, out[:nbytes].astype(np.uint8).tobytes())


def _table(lengths: np.ndarray) -> np.ndarray:
    """Decode table over ``MAX_LENGTH``-bit windows: ``symbol | length << 8`` of the code the window starts with."""
    table = np.zeros(1 << MAX_LENGTH, dtype=np.uint16)
    codes = canonical_codes(lengths)
    for symbol in np.flatnonzero(lengths):
        shift = MAX_LENGTH - int(lengths[symbol])
        table[codes[symbol] << shift:(codes[symbol] + 1) << shift] = symbol | (int(lengths[symbol]) << 8)
    return table


def decode(streams: list[Stream], block: int) -> list[np.ndarray]:
    """Decode every stream (int64 symbols each), all blocks of all streams stepping together."""
    out = [np.zeros(s.count, dtype=np.int64) for s in streams]
    coded = [i for i, s in enumerate(streams) if s.count and s.bits]
    for i, s in enumerate(streams):  # a lone symbol costs no bits: its stream is that symbol repeated
        if s.count and not s.bits:
            out[i][:] = int(np.flatnonzero(s.lengths)[0])
    if not coded:
        return out
    data = np.frombuffer(b"".join(streams[i].data for i in coded) + b"\0\0\0", dtype=np.uint8)
    # A 24-bit big-endian window starting at every byte: 15 bits at any bit offset fit in it.
    window = (data[:-2].astype(np.uint32) << 16) | (data[1:-1].astype(np.uint32) << 8) | data[2:]
    tables = np.concatenate([_table(streams[i].lengths) for i in coded])
    starts, table_of, counts, which = [], [], [], []
    byte = 0
    for t, i in enumerate(coded):
        s = streams[i]
        bounds = np.concatenate([[0], np.cumsum(s.block_bits.astype(np.int64))[:-1]])
        starts.append(byte * 8 + bounds)
        nblocks = len(s.block_bits)
        table_of.append(np.full(nblocks, t << MAX_LENGTH, dtype=np.int64))
        counts.append(np.minimum(block, s.count - block * np.arange(nblocks)))
        which.append(np.full(nblocks, i))
        byte += len(s.data)
    pos, base, count = np.concatenate(starts), np.concatenate(table_of), np.concatenate(counts)
    symbols = np.zeros((len(pos), block), dtype=np.uint8)
    last = len(window) - 1
    for step in range(int(count.max())):
        bits = (window[np.minimum(pos >> 3, last)] >> (24 - MAX_LENGTH - (pos & 7))) & ((1 << MAX_LENGTH) - 1)
        entry = tables[base + bits]
        symbols[:, step] = entry & 0xFF
        pos += np.where(step < count, entry >> 8, 0)
    owner = np.concatenate(which)
    for i in coded:
        out[i][:] = symbols[owner == i].reshape(-1)[:streams[i].count]
    return out
