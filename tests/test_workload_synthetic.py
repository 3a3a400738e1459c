"""Synthetic gamma arrivals: mean rate, burstiness (coefficient of variation), lengths, determinism."""
import math

import numpy as np
import pytest

from experiments.workload.synthetic import LengthRange, SyntheticTraceConfig, generate_synthetic_trace


def gaps(config: SyntheticTraceConfig) -> np.ndarray:
    return np.diff([r.arrival_s for r in generate_synthetic_trace(config)])


@pytest.mark.parametrize("burstiness", [0.5, 1.0, 4.0])
def test_mean_rate_and_burstiness(burstiness):
    inter_arrivals = gaps(SyntheticTraceConfig(num_requests=20000, request_rate=8.0, burstiness=burstiness, seed=1))
    assert 1.0 / inter_arrivals.mean() == pytest.approx(8.0, rel=0.03)
    # Gamma(shape k): coefficient of variation = 1/sqrt(k); k = 1 is Poisson (CV 1).
    assert inter_arrivals.std() / inter_arrivals.mean() == pytest.approx(1 / math.sqrt(burstiness), rel=0.05)


def test_first_request_at_zero_and_sorted():
    trace = generate_synthetic_trace(SyntheticTraceConfig(num_requests=50, request_rate=2.0))
    assert trace[0].arrival_s == 0.0
    assert all(a.arrival_s <= b.arrival_s for a, b in zip(trace, trace[1:]))


def test_infinite_rate_sends_everything_at_once():
    trace = generate_synthetic_trace(SyntheticTraceConfig(num_requests=5, request_rate=math.inf))
    assert [r.arrival_s for r in trace] == [0.0] * 5


def test_lengths_follow_their_ranges():
    config = SyntheticTraceConfig(num_requests=4000, request_rate=1.0, prompt_len=LengthRange(10, 20),
                                  output_len=LengthRange.fixed(7))
    trace = generate_synthetic_trace(config)
    prompt_lens = {r.prompt_len for r in trace}
    assert prompt_lens == set(range(10, 21))
    assert {r.output_len for r in trace} == {7}


def test_seeded_determinism():
    config = SyntheticTraceConfig(num_requests=100, request_rate=3.0, burstiness=0.3, seed=7)
    other_seed = SyntheticTraceConfig(num_requests=100, request_rate=3.0, burstiness=0.3, seed=8)
    assert generate_synthetic_trace(config) == generate_synthetic_trace(config)
    assert generate_synthetic_trace(config) != generate_synthetic_trace(other_seed)


@pytest.mark.parametrize("kwargs, message", [
    ({"num_requests": 0, "request_rate": 1.0}, "num_requests must be >= 1"),
    ({"num_requests": 1, "request_rate": 0.0}, "request_rate must be > 0"),
    ({"num_requests": 1, "request_rate": 1.0, "burstiness": 0.0}, "burstiness must be a finite number > 0"),
])
def test_bad_config_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SyntheticTraceConfig(**kwargs)
    with pytest.raises(ValueError, match=r"1 <= low <= high, got \[5, 4\]"):
        LengthRange(5, 4)
