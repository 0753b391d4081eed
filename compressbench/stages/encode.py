"""The ``encode`` stage kind: the Deep Compression storage format (Han et al. 2016), as a real file.

Writes ``stages/NN_encode/model.cbdc`` — per conv/linear layer the relative indices of its nonzero weights,
its codebook and the weights' codebook indices, gaps and indices Huffman coded; everything else exact (see
``deepcompression.fileformat``) — reads the file back, loads it into a copy of the model and checks that the
decoded model's logits equal the encoded model's on test images (``encode_verified``). The decoded model goes
on down the chain as plain layers (no sharing hooks), so what follows starts from the file's content.
``encoded_bytes`` is the file's size; ``layers.csv`` is Han et al.'s Tables 2-5 for this model (weights kept,
index and weight bits before and after Huffman coding, ratio after pruning, + weight sharing, + Huffman coding).

Run it after ``cluster`` (and its finetune): a layer with more than 256 distinct values keeps them raw.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from compressbench.config import StageConfig, check
from compressbench.results import csv_bytes
from compressbench.stages import StageResult, register_stage
from compressbench.stages.kind import FP32

if TYPE_CHECKING:
    from torch import nn

    from compressbench.engine.env import StageEnv
    from compressbench.runtimes import Deployable

FILE = "model.cbdc"


@dataclass
class EncodeConfig(StageConfig):
    stage: str = "encode"
    conv_index_bits: int = 8  # bits per relative index (gap) in conv layers (Han et al.'s AlexNet: 8)
    linear_index_bits: int = 5  # ... in linear layers (AlexNet and their LeNets: 5)
    layer_index_bits: dict[str, int] = field(default_factory=dict)  # layer / parent / glob → bits; first match
    block: int = 1024  # symbols per Huffman block: blocks decode in parallel; each costs 2 bytes in the file
    verify_images: int = 64  # test images on which the decoded model's logits must equal the encoded model's

    def __post_init__(self) -> None:
        for key in ("conv_index_bits", "linear_index_bits"):
            check(1 <= getattr(self, key) <= 8, key, getattr(self, key), "1..8 bits per relative index")
        for name, bits in self.layer_index_bits.items():
            check(1 <= bits <= 8, f"layer_index_bits.{name}", bits, "1..8 bits per relative index")
        check(16 <= self.block <= 4096, "block", self.block, "16..4096 symbols per Huffman block")
        check(self.verify_images >= 1, "verify_images", self.verify_images, ">= 1")

    def index_bits(self, name: str, m: nn.Module) -> int:
        from compressbench.techniques.pruning.layers import by_layer

        return by_layer(name, m, self.layer_index_bits, self.linear_index_bits, self.conv_index_bits)


def check_layers(cfg: EncodeConfig, model: nn.Module, node: str = "encode") -> None:
    """Fail, naming the key, when ``layer_index_bits`` names a layer the model does not have."""
    from compressbench.techniques.pruning.layers import check_selectors

    check_selectors(model, f"{node}.layer_index_bits", cfg.layer_index_bits)


# It hands on the decoded fp32 model.
@register_stage("encode", EncodeConfig, needs_fp32=True, makes=FP32, does="encodes fp32 weights",
                model_check=check_layers)
def encode(artifact: Deployable, cfg: EncodeConfig, env: StageEnv) -> StageResult:
    """Make the Deep Compression file, decode it into a copy of the model, verify logits; hand on the copy."""
    import torch

    from compressbench.runtimes import Eager, as_module
    from compressbench.runtimes.eager import module_device
    from compressbench.techniques.deepcompression import sharing
    from compressbench.techniques.deepcompression.fileformat import (
        decode_state,
        encode_state,
        layer_table,
        same_state,
    )
    from compressbench.techniques.pruning.layers import prunable_layers

    model = as_module(artifact, env.name)
    check_layers(cfg, model, env.name)
    sharing.sync_(model)  # a shared layer's weights as its shared values (a forward pass would do the same)
    state = model.state_dict()
    packed = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if packed:
        raise ValueError(f"encode works on float models; these entries are not tensors: {', '.join(packed[:5])}. "
                         "Put encode before quantize in the chain.")
    start = time.perf_counter()
    encoded = encode_state(state, {f"{n}.weight": cfg.index_bits(n, m) for n, m in prunable_layers(model).items()},
                           cfg.block)
    encode_s = time.perf_counter() - start
    data = encoded.data  # the file's bytes: what is verified is exactly what the pipeline writes
    start = time.perf_counter()
    back = decode_state(data)
    decode_s = time.perf_counter() - start
    # The decoded model is what a deployment loads: plain layers, no sharing hooks (timed as such); a train
    # stage after encode trains single weights again.
    decoded = sharing.unshare_(copy.deepcopy(model))
    decoded.load_state_dict(back)
    x = env.example_batch(cfg.verify_images, module_device(model))
    model.eval()
    decoded.eval()
    with torch.no_grad():
        ok = same_state(back, state) and torch.equal(model(x), decoded(x))
    if not ok:  # an unverified size is never reported
        raise RuntimeError(f"the model decoded from {FILE} does not give the encoded model's logits; this is a bug "
                           "in compressbench.techniques.deepcompression.fileformat")
    table = layer_table(encoded)
    total = table[-1]
    ref = env.reference.metrics if env.reference is not None and env.reference.metrics else None
    distinct = sharing.distinct_values(decoded)  # every conv/linear layer of the file, raw ones included
    record = dict(encoded_bytes=len(data), encode_verified=ok, encoded_layers=len(table) - 1,
               distinct_values_max=max(distinct.values(), default=None),
               encoded_ratio=ref["dense_bytes"] / len(data) if ref else None,
               weights_kept_pct=total["weights_kept_pct"], weight_bits_huffman=total["weight_bits_huffman"],
               index_bits_huffman=total["index_bits_huffman"], ratio_p=total["ratio_p"],
               ratio_pq=total["ratio_pq"], ratio_pqh=total["ratio_pqh"], encode_s=encode_s, decode_s=decode_s)
    return StageResult(Eager(decoded, artifact.arch, artifact.runtime), record,
                       files={FILE: data, "layers.csv": csv_bytes(table)})
