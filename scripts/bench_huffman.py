"""Benchmark: our canonical Huffman coder against bitarray's, on the symbol streams Deep Compression codes.

Streams of ``--symbols`` symbols drawn from a skewed (geometric) distribution over ``--alphabet`` symbols, like
the cluster indices and relative-index gaps of a pruned, clustered layer. Both coders build a canonical code
from the stream's own counts; each round times ours and bitarray's encode and decode back to back (ABAB, one
process), and both decodes are checked to give the stream back. Sizes are the coded payload in bytes (code
tables excluded: ours stores 4 bits per symbol of the alphabet). bitarray is optional (``pip install
bitarray``); without it only our coder is timed and the CSV says so.

    python scripts/bench_huffman.py [--symbols 1000000] [--alphabet 64] [--rounds 7]
        [--out findings/benchmarks/bench_huffman.csv]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from compressbench.pipeline.provenance import machine
from compressbench.results import write_csv
from compressbench.techniques.deepcompression import huffman

BLOCK = 1024  # the block size encode uses in the Deep Compression file format


def stream(n: int, alphabet: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.minimum(rng.geometric(0.15, n) - 1, alphabet - 1).astype(np.int64)


def ours(symbols: np.ndarray, alphabet: int) -> tuple[Callable[[], object], Callable[[], np.ndarray], int]:
    coded = huffman.encode(symbols, alphabet, BLOCK)
    return (lambda: huffman.encode(symbols, alphabet, BLOCK),
            lambda: huffman.decode([coded], BLOCK)[0], len(coded.data))


def theirs(symbols: np.ndarray, alphabet: int) -> tuple[Callable[[], object], Callable[[], np.ndarray], int]:
    from bitarray import bitarray
    from bitarray.util import canonical_decode, canonical_huffman

    values = symbols.tolist()
    counts = {int(s): int(c) for s, c in enumerate(np.bincount(symbols, minlength=alphabet)) if c}
    code, count, order = canonical_huffman(counts)

    def encode() -> bitarray:
        out = bitarray(endian="big")
        out.encode(code, values)
        return out

    coded = encode()
    return (encode, lambda: np.fromiter(canonical_decode(coded, count, order), dtype=np.int64, count=len(values)),
            (len(coded) + 7) // 8)


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--symbols", type=int, default=1_000_000)
    parser.add_argument("--alphabet", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path("findings/benchmarks/bench_huffman.csv"))
    args = parser.parse_args(argv)
    symbols = stream(args.symbols, args.alphabet)
    coders = {"compressbench": ours(symbols, args.alphabet)}
    try:
        coders["bitarray"] = theirs(symbols, args.alphabet)
    except ImportError:
        print("bitarray is not installed (pip install bitarray): timing ours only", file=sys.stderr)
    for name, (_, decode, _) in coders.items():
        if not np.array_equal(decode(), symbols):
            raise SystemExit(f"{name}'s decode did not give the stream back")
    times: dict[str, dict[str, list[float]]] = {n: {"encode": [], "decode": []} for n in coders}
    for _ in range(args.rounds):  # interleaved: every round times each coder's encode and decode in turn
        for name, (encode, decode, _) in coders.items():
            times[name]["encode"].append(timed(encode))
            times[name]["decode"].append(timed(decode))
    rows = []
    for name, (_, _, size) in coders.items():
        row = {"coder": name, "symbols": args.symbols, "alphabet": args.alphabet, "payload_bytes": size,
               "bits_per_symbol": 8 * size / args.symbols, "rounds": args.rounds, "machine": machine(),
               "bitarray_installed": "bitarray" in coders}
        for op in ("encode", "decode"):
            row[f"{op}_ms_median"] = statistics.median(times[name][op])
            row[f"{op}_ms_min"] = min(times[name][op])
        rows.append(row)
    if "bitarray" in coders:  # per-round ratios of interleaved timings: >1 means bitarray is faster
        for op in ("encode", "decode"):
            ratios = [o / b for o, b in zip(times["compressbench"][op], times["bitarray"][op], strict=True)]
            rows[0][f"{op}_ours_over_bitarray"] = statistics.median(ratios)
    write_csv(args.out, rows)
    for row in rows:
        print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items() if k != "machine"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
