"""The sparse encoding decodes back exactly, picks the smallest layout, and shrinks what pruning zeroed."""
from __future__ import annotations

import io

import pytest
import torch

from compressbench.models import build_model
from compressbench.techniques.pruning.encoding import decode, encode, encode_verified
from compressbench.techniques.pruning.layers import Spec
from compressbench.techniques.pruning.unstructured import prune_weights_


def sparse(shape, density: float, seed: int, dtype=torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g) * (torch.rand(shape, generator=g) < density)).to(dtype)


@pytest.mark.parametrize("density", [0.0, 0.001, 0.05, 0.3, 0.9, 1.0])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
def test_every_tensor_decodes_exactly(density, dtype):
    state = {"conv.weight": sparse((32, 16, 3, 3), density, 1, dtype),
             "fc.weight": sparse((10, 700), density, 2, dtype),
             "bn.num_batches_tracked": torch.tensor(7), "scalar": torch.tensor(1.5, dtype=dtype),
             "empty": torch.zeros(0, 3, dtype=dtype), "mask": torch.rand(9) > 0.5,
             "int8": torch.arange(-4, 4).to(torch.int8)}
    encoded, ok = encode_verified(state)
    assert ok and sum(encoded.layouts.values()) == len(state)
    back = decode(encoded.data)
    assert list(back) == list(state)
    for k, t in state.items():
        assert back[k].dtype == t.dtype and back[k].shape == t.shape and torch.equal(back[k], t), k


def test_long_runs_of_zeros_use_filler_entries():
    t = torch.zeros(100_000)
    t[[0, 1, 300, 5_000, 99_999]] = torch.tensor([1.0, -2.0, 3.0, 4.0, 5.0])  # gaps far beyond one byte
    encoded = encode({"w": t})
    assert encoded.layouts["relative"] == 1 and len(encoded.data) < 2_500  # ~390 fillers of 5 B; a bitmask: 12.5 kB
    assert torch.equal(decode(encoded.data)["w"], t)


def test_the_layout_is_the_smallest_of_the_three():
    dense = {"w": torch.randn(4096)}
    assert encode(dense).layouts["dense"] == 1
    half = {"w": sparse(4096, 0.5, 0)}  # a bit per weight beats a byte per nonzero here
    assert encode(half).layouts["bitmask"] == 1
    rare = {"w": sparse(4096, 0.01, 0)}
    assert encode(rare).layouts["relative"] == 1
    for state in (dense, half, rare):  # dense_bytes: the same container with nothing sparse
        assert encode(state).dense_bytes == len(encode(state, layouts=("dense",)).data)


def test_a_90_percent_pruned_model_encodes_at_least_5x_smaller_than_its_dense_artifact():
    model = build_model({"name": "resnet8"}, 10, 3, 32)
    prune_weights_(model, Spec(0.9, scope="global"))
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    encoded, ok = encode_verified(model.state_dict())
    assert ok and len(buf.getvalue()) / len(encoded.data) > 5.0


def test_foreign_or_future_files_are_refused():
    with pytest.raises(ValueError, match="bad magic"):
        decode(b"PK\x03\x04 a zip file")
    data = bytearray(encode({"w": torch.ones(2)}).data)
    data[8] = 99
    with pytest.raises(ValueError, match="version 99"):
        decode(bytes(data))
    with pytest.raises(TypeError, match="cannot encode tensor q"):
        encode({"q": torch.ones(2, dtype=torch.complex64)})
