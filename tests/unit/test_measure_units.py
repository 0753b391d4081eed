"""Measurement building blocks on hand-checkable models."""
from __future__ import annotations

import re
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


def _fake_clock(monkeypatch):
    """Each call returns the milliseconds it "took": timing without a clock, so stopping rules are exact."""
    from compressbench.measure import latency

    monkeypatch.setattr(latency, "time_calls", lambda call, iters, device: [call() for _ in range(iters)])


def test_adaptive_timing_stops_once_the_ratios_settle(monkeypatch):
    _fake_clock(monkeypatch)
    timing = time_model(lambda: 2.0, torch.device("cpu"), warmup=0, iters=3, rounds=9,
                        reference=lambda: 4.0, min_rounds=3, tolerance=0.05)
    assert timing.rounds == 3 and timing.speedup == 2.0


def test_adaptive_timing_goes_on_while_the_ratios_disagree(monkeypatch):
    _fake_clock(monkeypatch)
    slow = iter([4.0, 4.0, 4.0, 6.0, 6.0, 6.0] * 10)  # per round: a reference at 4 ms, then at 6 ms, ...
    timing = time_model(lambda: 2.0, torch.device("cpu"), warmup=0, iters=3, rounds=7,
                        reference=lambda: next(slow), min_rounds=3, tolerance=0.05)
    assert timing.rounds == 7 and sorted(set(timing.ratios)) == [2.0, 3.0]


def test_tolerance_zero_always_times_every_round(monkeypatch):
    _fake_clock(monkeypatch)
    for reference in (lambda: 4.0, None):
        timing = time_model(lambda: 2.0, torch.device("cpu"), warmup=0, iters=2, rounds=6, reference=reference,
                            min_rounds=3, tolerance=0.0)
        assert timing.rounds == 6


def test_adaptive_timing_without_a_reference_uses_the_round_medians(monkeypatch):
    _fake_clock(monkeypatch)
    steady = time_model(lambda: 2.0, torch.device("cpu"), warmup=0, iters=3, rounds=8, min_rounds=3,
                        tolerance=0.05)
    drifting = iter([float(v) for v in range(1, 100)])
    moving = time_model(lambda: next(drifting), torch.device("cpu"), warmup=0, iters=3, rounds=8, min_rounds=3,
                        tolerance=0.05)
    assert steady.rounds == 3 and moving.rounds == 8


def test_settled_is_a_t_interval_on_log_ratios():
    from compressbench.measure.latency import settled

    assert settled([2.0, 2.0, 2.0], 0.01)
    assert not settled([2.0, 2.0], 0.0)  # tolerance 0: never
    assert not settled([2.0], 0.5)  # one round has no spread to judge
    # sd of logs 0.050 at n=3: half-width 4.303 * sd / sqrt(3) = 0.124 (log) -> within ±14%, not within ±13%
    assert settled([1.9, 2.0, 2.1], 0.14) and not settled([1.9, 2.0, 2.1], 0.13)


@pytest.mark.parametrize("opts, message", [
    ({"tolerance": 1.5}, "tolerance=1.5 is not allowed: in [0, 1)"),
    ({"tolerance": -0.1}, "tolerance=-0.1 is not allowed"),
    ({"min_rounds": 0}, "min_rounds=0 is not allowed: >= 1"),
])
def test_adaptive_timing_settings_are_checked(opts, message):
    from compressbench.config import MeasureConfig

    with pytest.raises(Exception, match=re.escape(message)):
        MeasureConfig(**opts)


def test_min_rounds_above_rounds_times_rounds(monkeypatch):
    _fake_clock(monkeypatch)
    timing = time_model(lambda: 2.0, torch.device("cpu"), warmup=0, iters=2, rounds=2, reference=lambda: 4.0,
                        min_rounds=3, tolerance=0.05)
    assert timing.rounds == 2  # never more than `rounds` (+debug=smoke sets rounds: 2)
