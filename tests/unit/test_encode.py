"""The Deep Compression file: the Huffman coder, the relative indices, the round trip, and the encode stage."""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from compressbench.config import ConfigError
from compressbench.models import MODELS, build_model
from compressbench.pipeline.runner import run
from compressbench.results import read_csv
from compressbench.stages.cluster import ClusterConfig
from compressbench.techniques.deepcompression import huffman, sharing
from compressbench.techniques.deepcompression.fileformat import (
    decode_state,
    encode_state,
    gap_symbols,
    layer_table,
    positions_of,
    same_state,
)
from compressbench.techniques.pruning.layers import Spec, prunable_layers
from compressbench.techniques.pruning.unstructured import prune_weights_

BIG = {"resnet50", "resnet110", "resnet34"}  # resnet20/56 stand for the residual nets; -m slow
QUICK = ["measure.latency=false", "runtime.progress=false"]


def test_huffman_lengths_are_optimal_complete_and_limited():
    assert huffman.code_lengths(np.array([4, 2, 1, 1])).tolist() == [1, 2, 3, 3]
    assert huffman.code_lengths(np.array([0, 7, 0])).tolist() == [0, 1, 0]  # a lone symbol
    fibonacci = np.array([1, 1] + [0] * 38)
    for i in range(2, 40):
        fibonacci[i] = fibonacci[i - 1] + fibonacci[i - 2]  # unlimited, the longest code would be 39 bits
    lengths = huffman.code_lengths(fibonacci)
    assert lengths.max() <= huffman.MAX_LENGTH and (2.0 ** -lengths.astype(float)).sum() == 1.0  # Kraft: complete
    codes = huffman.canonical_codes(lengths)
    words = {format(int(c), f"0{int(n)}b") for c, n in zip(codes, lengths, strict=True)}
    assert not any(a != b and b.startswith(a) for a in words for b in words)  # prefix-free


def test_huffman_round_trip_of_many_streams_at_once_near_the_entropy():
    rng = np.random.default_rng(0)
    sources = [rng.integers(0, 32, 5000), np.minimum(rng.geometric(0.2, 30000) - 1, 255), np.full(17, 3),
               np.zeros(0, dtype=np.int64), rng.integers(0, 2, 1), rng.integers(0, 256, 1025)]
    alphabets = [32, 256, 8, 4, 2, 256]
    streams = [huffman.encode(s, a, block=64) for s, a in zip(sources, alphabets, strict=True)]
    decoded = huffman.decode(streams, block=64)
    assert all(np.array_equal(d, s) for d, s in zip(decoded, sources, strict=True))
    assert streams[2].bits == 0 and streams[3].bits == 0  # a lone symbol or nothing: no bits
    p = np.bincount(sources[1]) / len(sources[1])
    entropy = -(p[p > 0] * np.log2(p[p > 0])).sum()
    assert entropy <= streams[1].bits / len(sources[1]) < entropy + 1


@pytest.mark.parametrize("index_bits", [1, 2, 5, 8])
def test_relative_indices_bridge_long_gaps_with_fillers(index_bits: int):
    positions = np.array([0, 1, 2, 40, 41, 1000, 1001 + (1 << index_bits)])
    symbols = gap_symbols(positions, index_bits)
    assert symbols.max() <= (1 << index_bits) - 1
    assert len(symbols) > len(positions)  # fillers were needed
    assert np.array_equal(positions_of(symbols, index_bits), positions)


def clustered(name: str, amount: float = 0.8, bits: int = 3) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model({"name": name}, 4, 3, 8).eval()
    prune_weights_(model, Spec(amount), 1.0, "magnitude", torch.Generator().manual_seed(0))
    sharing.cluster_model_(model, ClusterConfig(conv_bits=bits, linear_bits=bits).bits_for, iters=5)
    return model


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in BIG else n
                                  for n in MODELS.names()])
def test_every_model_decodes_to_identical_logits(name: str):
    model = clustered(name)
    state = model.state_dict()
    encoded = encode_state(state, {f"{n}.weight": 5 for n in prunable_layers(model)}, block=256)
    back = decode_state(encoded.data)
    assert same_state(back, state)
    decoded = copy.deepcopy(model)
    decoded.load_state_dict(back)
    x = torch.randn(4, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(decoded(x), model(x))
    dense = sum(t.numel() * t.element_size() for t in state.values())
    assert len(encoded.data) < dense / 8  # 80% zeros, 3-bit weights


def test_every_layout_round_trips_and_the_table_adds_up():
    torch.manual_seed(0)
    sparse = torch.tensor([0.5, -0.25, 0.5]).repeat(40)[torch.randperm(120)]
    sparse[torch.randperm(120)[:90]] = 0
    state = {
        "sparse.weight": sparse.reshape(10, 12),  # codebook + relative indices
        "dense.weight": torch.tensor([1.0, 2.0, 3.0]).repeat(8).reshape(4, 6),  # no zeros: no indices
        "raw.weight": torch.randn(20, 30),  # 600 distinct values: kept raw
        "empty.weight": torch.zeros(3, 3),  # nothing left
        "one.weight": torch.full((5, 5), 0.125),  # one shared value: its weight stream costs no bits
        "bn.num_batches_tracked": torch.tensor(7),  # everything else, exact
        "bn.running_mean": torch.randn(4),
    }
    names = {k: 4 for k in state if k.endswith("weight")}
    encoded = encode_state(state, names, block=16)
    assert same_state(decode_state(encoded.data), state)
    rows = {r["layer"]: r for r in layer_table(encoded)}
    assert rows["sparse.weight"]["weights_kept_pct"] == pytest.approx(25.0)
    assert rows["sparse.weight"]["codebook_size"] == 2 and rows["sparse.weight"]["weight_bits"] == 1
    assert rows["dense.weight"]["index_bits"] == 0 and rows["raw.weight"]["weight_bits"] == 32
    assert rows["one.weight"]["weight_bits_huffman"] == 0.0
    total = rows["total"]
    assert total["bytes_pqh"] == len(encoded.data)
    assert total["bytes_dense"] == sum(t.numel() * t.element_size() for t in state.values())
    assert rows["sparse.weight"]["ratio_p"] < rows["sparse.weight"]["ratio_pq"]


def with_deep_chain(cfg, **encode_opts):
    OmegaConf.set_struct(cfg, False)
    cfg.prune = {"stage": "prune", "method": "magnitude", "amount": 0.8, "scope": "global"}
    cfg.cluster = {"stage": "cluster", "conv_bits": 4, "linear_bits": 3}
    cfg.encode = {"stage": "encode", **encode_opts}
    cfg.chain = ["train", "prune", "cluster", "finetune", "encode", "after"]
    cfg.after = {"stage": "train", "epochs": 0}
    return cfg


def test_encode_stage_writes_a_verified_file_and_hans_table(make_cfg, tmp_path: Path):
    out = tmp_path / "run"
    rows = {r["stage"]: r for r in run(with_deep_chain(make_cfg(*QUICK)), out)}
    encode, finetune, train = rows["encode"], rows["finetune"], rows["train"]
    path = out / "stages/04_encode/model.cbdc"
    assert encode["status"] == "ok" and encode["encode_verified"] is True
    assert encode["encoded_bytes"] == path.stat().st_size
    assert encode["encoded_ratio"] == pytest.approx(train["dense_bytes"] / encode["encoded_bytes"])
    assert encode["ratio_p"] < encode["ratio_pq"] and encode["encoded_ratio"] > 8
    # The decoded model goes on: same accuracy, same zeros.
    assert encode["test_acc"] == finetune["test_acc"] and encode["nonzero_params"] == finetune["nonzero_params"]
    assert rows["after"]["test_acc"] == encode["test_acc"]
    # The clustered rows carry the training form (a sharing hook per layer); the decoded model is plain.
    assert finetune["distinct_values_max"] <= 2**8 and "distinct_values_max" not in rows["after"]
    table = read_csv(out / "stages/04_encode/layers.csv")
    assert [r["layer"] for r in table][-1] == "total" and len(table) == 6
    assert {"weights_kept_pct", "index_bits", "weight_bits", "weight_bits_huffman", "index_bits_huffman",
            "ratio_p", "ratio_pq", "ratio_pqh"} <= set(table[0])
    back = decode_state(path.read_bytes())  # the file alone rebuilds the model
    model = build_model({"name": "lenet5"}, 4, 1, 8)
    model.load_state_dict(back)
    assert sum(int(torch.count_nonzero(p)) for p in model.parameters()) == encode["nonzero_params"]


def test_cluster_row_sizes_the_file_the_next_encode_writes(make_cfg, tmp_path: Path):
    """The cluster row's encoded_bytes uses the chain's encode settings: with nothing trained in between, the
    two rows describe the same file; the encode row counts distinct values in every layer, raw ones too."""
    cfg = with_deep_chain(make_cfg(*QUICK), conv_index_bits=3, linear_index_bits=2)
    cfg.cluster.ignore = ["classifier.0"]  # kept float: more than 256 distinct values, stored raw
    cfg.chain = ["train", "prune", "cluster", "encode"]
    rows = {r["stage"]: r for r in run(cfg, tmp_path / "run")}
    assert rows["cluster"]["encoded_bytes"] == rows["encode"]["encoded_bytes"]
    assert rows["cluster"]["distinct_values_max"] <= 16 < rows["encode"]["distinct_values_max"]


@pytest.mark.parametrize("opts, message", [
    ({"linear_index_bits": 0}, "encode.linear_index_bits=0 is not allowed: 1..8"),
    ({"conv_index_bits": 9}, "encode.conv_index_bits=9 is not allowed: 1..8"),
    ({"block": 8}, "encode.block=8 is not allowed"),
    ({"layer_index_bits": {"conv9": 4}}, "encode.layer_index_bits='conv9' is not allowed: .*its layers: "
                                         "features.0"),
])
def test_bad_values_fail_before_any_work(make_cfg, tmp_path: Path, opts: dict, message: str):
    with pytest.raises(ConfigError, match=message):
        run(with_deep_chain(make_cfg(*QUICK), **opts), tmp_path / "run")
    assert not (tmp_path / "cache").exists()
