"""Synthetic arrivals in the style of vLLM's benchmark: gamma inter-arrival times with a burstiness knob."""
import math
from dataclasses import dataclass, field

import numpy as np

from experiments.workload.traces import TraceRequest


@dataclass(slots=True)
class LengthRange:
    """Token lengths drawn uniformly from ``[low, high]`` (both inclusive); ``low == high`` is a fixed length."""
    low: int
    high: int

    def __post_init__(self):
        if not 1 <= self.low <= self.high:
            raise ValueError(f"length range needs 1 <= low <= high, got [{self.low}, {self.high}]")

    @staticmethod
    def fixed(length: int) -> "LengthRange":
        return LengthRange(length, length)

    def sample(self, rng: np.random.Generator, count: int) -> np.ndarray:
        return rng.integers(self.low, self.high, size=count, endpoint=True)   # [count]


@dataclass(slots=True)
class SyntheticTraceConfig:
    """``request_rate`` in requests/s (``inf``: all at t=0). ``burstiness`` is the gamma shape:
    1 gives a Poisson process, < 1 burstier, > 1 more regular; the mean rate stays ``request_rate``."""
    num_requests: int = 32
    request_rate: float = 1.0
    burstiness: float = 1.0
    prompt_len: LengthRange = field(default_factory=lambda: LengthRange.fixed(512))
    output_len: LengthRange = field(default_factory=lambda: LengthRange.fixed(128))
    seed: int = 0

    def __post_init__(self):
        if self.num_requests < 1:
            raise ValueError(f"num_requests must be >= 1, got {self.num_requests}")
        if not self.request_rate > 0:
            raise ValueError(f"request_rate must be > 0 (or inf), got {self.request_rate}")
        if not (self.burstiness > 0 and math.isfinite(self.burstiness)):
            raise ValueError(f"burstiness must be a finite number > 0, got {self.burstiness}")


def generate_synthetic_trace(config: SyntheticTraceConfig) -> list[TraceRequest]:
    """The first request arrives at 0; gaps ~ Gamma(shape=burstiness, scale=1/(rate*burstiness))."""
    rng = np.random.default_rng(config.seed)
    arrivals_s = _arrival_offsets(rng, config)             # [num_requests]
    prompt_lens = config.prompt_len.sample(rng, config.num_requests)
    output_lens = config.output_len.sample(rng, config.num_requests)
    return [TraceRequest(float(t), int(p), int(o)) for t, p, o in zip(arrivals_s, prompt_lens, output_lens)]


def _arrival_offsets(rng: np.random.Generator, config: SyntheticTraceConfig) -> np.ndarray:
    if math.isinf(config.request_rate):
        return np.zeros(config.num_requests)
    scale = 1.0 / (config.request_rate * config.burstiness)
    gaps_s = rng.gamma(shape=config.burstiness, scale=scale, size=config.num_requests - 1)
    return np.concatenate([[0.0], np.cumsum(gaps_s)])
