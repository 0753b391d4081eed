"""Measurement building blocks on hand-checkable models."""
from __future__ import annotations

import time

import pytest
import torch
from torch import nn

from compressbench.measure.latency import num_threads, quantile, time_model
from compressbench.measure.size import size_metrics
from compressbench.models.counting import count_macs, param_counts
from compressbench.runtimes import Arch, Eager


def test_macs_of_conv_and_linear_by_hand():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 10))
    macs, effective = count_macs(model, torch.zeros(1, 3, 4, 4))
    assert macs == 4 * 4 * 8 * 3 * 9 + 128 * 10
    assert effective == macs


def test_unstructured_zeros_keep_macs_but_zeroed_filters_reduce_effective_macs():
    conv = nn.Conv2d(4, 8, 3, padding=1, bias=False)
    model = nn.Sequential(conv)
    dense, _ = count_macs(model, torch.zeros(1, 4, 5, 5))
    with torch.no_grad():
        conv.weight[:, :, 0, 0] = 0  # scattered zeros: no filter or channel is entirely zero
    macs, effective = count_macs(model, torch.zeros(1, 4, 5, 5))
    assert macs == dense and effective == dense
    with torch.no_grad():
        conv.weight[:4] = 0  # half the filters gone
    macs, effective = count_macs(model, torch.zeros(1, 4, 5, 5))
    assert macs == dense and effective == dense // 2


def test_param_counts_and_sizes():
    model = nn.Linear(100, 10)
    with torch.no_grad():
        model.weight[:5] = 0
    params, nonzero = param_counts(model)
    assert params == 1010 and nonzero == 1010 - 500
    sizes = size_metrics(Eager(model, Arch({"name": "mlp"}, 10, 1, 10)))
    assert sizes["dense_bytes"] == 4040
    assert sizes["sparsity"] == pytest.approx(500 / 1010)
    # The serialized state_dict holds every fp32 value plus a little pickle overhead: zeros do not shrink it.
    assert 4040 < sizes["size_bytes"] < 4040 + 2000
    assert sizes["gzip_bytes"] < sizes["size_bytes"]


def test_quantile():
    assert quantile([1.0, 2.0, 3.0, 4.0, 5.0], 0.5) == 3.0
    assert quantile([1.0, 3.0], 0.5) == 2.0
    assert quantile([7.0], 0.95) == 7.0


def test_num_threads_restores():
    before = torch.get_num_threads()
    with num_threads(1) as used:
        assert used == 1 == torch.get_num_threads()
    assert torch.get_num_threads() == before


def test_paired_speedup_finds_a_twice_slower_reference():
    def reference():
        time.sleep(0.004)

    def candidate():
        time.sleep(0.002)

    timing = time_model(candidate, torch.device("cpu"), warmup=1, iters=3, rounds=4, reference=reference)
    assert len(timing.ratios) == 4 and len(timing.samples_ms) == 12
    assert 1.5 < timing.speedup < 2.5
    assert timing.speedup_iqr is not None and timing.speedup_iqr >= 0
    assert timing.p50 >= 2.0


def test_without_a_reference_there_is_no_speedup():
    timing = time_model(lambda: None, torch.device("cpu"), warmup=0, iters=2, rounds=2)
    assert timing.speedup is None and len(timing.samples_ms) == 4
