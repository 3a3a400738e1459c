"""Confidence intervals over requests: a percentile bootstrap of a mean, and of a paired difference between two runs
of the same workload (the same requests under two policies), so a reader sees whether a difference is real.

Pairing matters: two policies' scores on the same request move together (an easy request scores high under both),
so resampling the per-request differences gives a much tighter, and correct, interval than comparing two
independent means. Seeded: the same inputs give the same interval.
"""
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class MeanInterval:
    mean: float
    low: float
    high: float


def bootstrap_mean_ci(values: Sequence[float], confidence: float = 0.95, num_resamples: int = 10_000,
                      seed: int = 0) -> MeanInterval:
    """The mean of ``values`` and the central ``confidence`` interval of the means of ``num_resamples`` resamples
    (with replacement, of the same size)."""
    x = np.asarray(values, dtype=np.float64)                                     # [n]
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"bootstrap_mean_ci needs a non-empty 1-D sequence, got shape {x.shape}")
    if not 0 < confidence < 1 or num_resamples < 1:
        raise ValueError(f"confidence must lie in (0, 1) and num_resamples be >= 1, got {confidence}, {num_resamples}")
    picks = np.random.default_rng(seed).integers(0, x.size, size=(num_resamples, x.size))   # [R, n]
    means = x[picks].mean(axis=1)                                                           # [R]
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return MeanInterval(float(x.mean()), float(low), float(high))


def paired_bootstrap_ci(baseline: Sequence[float], candidate: Sequence[float], confidence: float = 0.95,
                        num_resamples: int = 10_000, seed: int = 0) -> MeanInterval:
    """Mean of ``candidate[i] - baseline[i]`` over requests ``i`` and its bootstrap interval."""
    if len(baseline) != len(candidate):
        raise ValueError(f"paired scores need one per request in both runs, got {len(baseline)} and {len(candidate)}")
    differences = np.asarray(candidate, dtype=np.float64) - np.asarray(baseline, dtype=np.float64)
    return bootstrap_mean_ci(differences, confidence, num_resamples, seed)
