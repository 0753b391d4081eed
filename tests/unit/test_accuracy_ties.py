"""Ties for the top logit are scored neutrally (1/k), the same way on every runtime that evaluates a model."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from compressbench.measure.accuracy import PER_IMAGE_KEY, accuracy_metrics, evaluate
from compressbench.results.per_image import read_credit, write_hits
from compressbench.runtimes import RUNTIMES, Arch, Eager
from compressbench.stages.quantize import QuantizeConfig
from compressbench.techniques.quantization import methods


class Tied(nn.Module):
    """Four classes; 0 and 1 always share one logit (the same tensor twice), 2 and 3 are their own."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 3)
        with torch.no_grad():
            self.fc.weight.copy_(torch.eye(3))
            self.fc.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.fc(x.flatten(1))
        return torch.cat([z[:, :1], z[:, :1], z[:, 1:]], dim=1)


def _batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    # Images 0-3: the tied pair (classes 0 and 1) on top, labels 0, 1, 1, 3 → credits ½, ½, ½, 0.
    # Images 4-5: class 2 on top alone, labels 2, 0 → 1, 0.  Top-1 = (½ + ½ + ½ + 1) / 6 = 41.67%.
    x = torch.tensor([[5.0, 1, 0], [5, 1, 0], [5, 0, 1], [5, 0, 1], [0, 5, 1], [0, 5, 1]])
    y = torch.tensor([0, 1, 1, 3, 2, 0])
    return [(x[:3].reshape(3, 1, 1, 3), y[:3]), (x[3:].reshape(3, 1, 1, 3), y[3:])]


def _on(route: str) -> object:
    base = Eager(Tied().eval(), Arch({"name": "tied"}, 4, 1, 3))
    if route == "eager":
        return base
    if route.endswith("int8"):  # the quantize stage's own builders; calibrated on the test images
        calibration = [x for x, _ in _batches()]
        if route == "fx-int8":
            return methods.static_fx(base, QuantizeConfig(observer="minmax"), None, calibration).artifact
        pytest.importorskip("onnxruntime", reason="onnxruntime is not installed: pip install onnxruntime")
        return methods.ort_static(base, QuantizeConfig(backend="onnxruntime"), None, calibration).artifact
    runtime = RUNTIMES.get(route)
    if not runtime.available():
        pytest.skip(f"{route} is not installed")
    return runtime.from_fp32(base, torch.zeros(1, 1, 1, 3))


@pytest.mark.parametrize("route", ["eager", "onnxruntime", "openvino", "fx-int8", "onnxruntime-int8"])
def test_a_tie_for_the_top_counts_one_over_k_on_every_runtime(route: str):
    artifact = _on(route)
    assert artifact.runtime.startswith(route)  # built as asked (onnxruntime-fp32, fx-int8, ...)
    m = accuracy_metrics(artifact, lambda split, device: _batches(), torch.device("cpu"), num_classes=4)
    # topk (lowest index wins) gave 3/6 = 50%, a rule preferring the highest index 2/6: neither is the model.
    assert m["test_acc"] == pytest.approx(100 * 2.5 / 6) and m["val_acc"] == pytest.approx(100 * 2.5 / 6)
    assert m["test_ties"] == 4 and m["val_ties"] == 4
    assert m[PER_IMAGE_KEY].tolist() == [2, 2, 2, 0, 1, 0]  # k of a hit's tie; 0 a miss


def test_top_k_credits_a_tie_across_the_k_boundary():
    logits = torch.tensor([[3.0, 2.0, 2.0, 2.0, 0.0]])  # label 3 shares rank 2-4 with two others
    batches = [(logits, torch.tensor([3]))]
    out = evaluate(nn.Identity(), batches, topk=(1, 2, 3, 4))
    assert out["top1"] == 0.0 and out["ties"] == 0  # the top logit is not tied
    assert out["top2"] == pytest.approx(100 / 3) and out["top3"] == pytest.approx(200 / 3) and out["top4"] == 100.0


def test_a_non_finite_logit_earns_no_credit():
    logits = torch.tensor([[float("nan"), 0.0], [1.0, 0.0]])
    out = evaluate(nn.Identity(), [(logits, torch.tensor([1, 0]))], topk=(1,))
    assert out["top1"] == 50.0


def test_per_image_hits_round_trip_as_credit(tmp_path):
    write_hits(tmp_path, np.array([0, 1, 2, 4], dtype=np.uint8))
    assert read_credit(tmp_path).tolist() == [0.0, 1.0, 0.5, 0.25]
    assert read_credit(tmp_path / "missing") is None
