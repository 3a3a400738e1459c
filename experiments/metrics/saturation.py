"""Where a policy saturates in a rate sweep (the paper's Figure 6): the request rate at which its P95 TTFT crosses
the SLO, and the output throughput there, both linearly interpolated between the two load points around the
crossing. A policy already above the SLO at the lowest rate saturates at or below it; one never above it saturates
beyond the highest rate measured (the highest point is then a lower bound): ``bound`` says which.
"""
from collections.abc import Sequence
from dataclasses import dataclass

INTERPOLATED, AT_OR_BELOW, BEYOND = "interpolated", "at or below the lowest rate", "beyond the highest rate"


@dataclass(frozen=True, slots=True)
class LoadPoint:
    request_rate: float          # offered load, requests/s
    p95_ttft_ms: float
    output_throughput: float     # tokens/s


@dataclass(frozen=True, slots=True)
class Saturation:
    request_rate: float
    output_throughput: float
    bound: str


def saturation(points: Sequence[LoadPoint], slo_ttft_ms: float) -> Saturation:
    """``points`` of one policy, any order (at least one)."""
    if not points:
        raise ValueError("saturation needs at least one load point")
    ordered = sorted(points, key=lambda p: p.request_rate)
    if ordered[0].p95_ttft_ms > slo_ttft_ms:
        return Saturation(ordered[0].request_rate, ordered[0].output_throughput, AT_OR_BELOW)
    for below, above in zip(ordered, ordered[1:]):
        if above.p95_ttft_ms > slo_ttft_ms:
            share = (slo_ttft_ms - below.p95_ttft_ms) / (above.p95_ttft_ms - below.p95_ttft_ms)
            return Saturation(_between(below.request_rate, above.request_rate, share),
                              _between(below.output_throughput, above.output_throughput, share), INTERPOLATED)
    return Saturation(ordered[-1].request_rate, ordered[-1].output_throughput, BEYOND)


def _between(low: float, high: float, share: float) -> float:
    return low + share * (high - low)
