"""Serving metrics with vLLM benchmark names: ttft, tpot, itl, e2el (ms), throughput, goodput, SLO violations.

Statistics (mean, median, p95, p99) are over completed requests; ``itl`` pools every token gap of every
completed request, as vLLM does. Throughputs divide by ``duration_s``, the length of the benchmark.
"""
import math
from dataclasses import dataclass

import numpy as np

from experiments.metrics.records import RequestRecord

PERCENTILES = (95, 99)
STATISTICS = ("mean", "median", *(f"p{p}" for p in PERCENTILES))


@dataclass(slots=True)
class SLO:
    """Service-level objectives in ms; ``None`` leaves that latency unconstrained."""
    ttft_ms: float | None = None
    tpot_ms: float | None = None
    e2el_ms: float | None = None

    def __post_init__(self):
        for name in ("ttft_ms", "tpot_ms", "e2el_ms"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"SLO {name} must be > 0 ms, got {value}")

    @property
    def is_set(self) -> bool:
        return any(v is not None for v in (self.ttft_ms, self.tpot_ms, self.e2el_ms))

    def met_by(self, record: RequestRecord) -> bool:
        """A completed request within every configured SLO (a single-token output has no TPOT to violate)."""
        return record.completed and all((
            _within(record.ttft_s, self.ttft_ms),
            record.tpot_s is None or _within(record.tpot_s, self.tpot_ms),
            _within(record.e2el_s, self.e2el_ms),
        ))


def latency_metrics(records: list[RequestRecord], duration_s: float | None = None,
                    slo: SLO | None = None) -> dict[str, float]:
    """All latency/throughput metrics of one run as a flat, ordered dict.

    ``duration_s`` defaults to last finish - first arrival. ``ttft_slo_violation_rate`` counts requests
    that did not complete as violations; it and ``request_goodput`` appear only when the SLOs are set.
    """
    if not records:
        raise ValueError("latency_metrics needs at least one request record")
    slo = slo or SLO()
    completed = [r for r in records if r.completed]
    duration_s = _benchmark_duration(records) if duration_s is None else duration_s
    if not duration_s > 0:
        raise ValueError(f"duration_s must be > 0, got {duration_s}")
    metrics = _counts_and_throughput(records, completed, duration_s)
    metrics.update(_slo_metrics(records, completed, duration_s, slo))
    metrics.update(_distribution("ttft", [r.ttft_s for r in completed]))
    metrics.update(_distribution("tpot", [r.tpot_s for r in completed if r.tpot_s is not None]))
    metrics.update(_distribution("itl", [gap for r in completed for gap in r.itls_s]))
    metrics.update(_distribution("e2el", [r.e2el_s for r in completed]))
    metrics.update(_distribution("queueing_delay", [r.queueing_delay_s for r in completed
                                                       if r.queueing_delay_s is not None]))
    metrics["total_preemptions"] = sum(r.num_preemptions for r in records)
    metrics["preempted_requests"] = sum(r.num_preemptions > 0 for r in records)
    return metrics


def _counts_and_throughput(records: list[RequestRecord], completed: list[RequestRecord],
                           duration_s: float) -> dict[str, float]:
    output_tokens = sum(r.num_output_tokens for r in completed)
    input_tokens = sum(r.prompt_len for r in completed)
    return {
        "completed": len(completed),
        "failed": len(records) - len(completed),
        "duration": duration_s,
        "total_input_tokens": input_tokens,
        "total_output_tokens": output_tokens,
        "request_throughput": len(completed) / duration_s,
        "output_throughput": output_tokens / duration_s,
        "total_token_throughput": (input_tokens + output_tokens) / duration_s,
    }


def _slo_metrics(records: list[RequestRecord], completed: list[RequestRecord], duration_s: float,
                 slo: SLO) -> dict[str, float]:
    metrics = {}
    if slo.is_set:
        metrics["request_goodput"] = sum(slo.met_by(r) for r in completed) / duration_s
    if slo.ttft_ms is not None:
        violations = sum(not (r.completed and _within(r.ttft_s, slo.ttft_ms)) for r in records)
        metrics["ttft_slo_violation_rate"] = violations / len(records)
    return metrics


def _distribution(name: str, values_s: list[float]) -> dict[str, float]:
    """mean/median/p95/p99 in ms; NaN when there are no values."""
    values_ms = np.asarray(values_s, dtype=np.float64) * 1000.0   # [n]
    if values_ms.size == 0:
        return {f"{stat}_{name}_ms": math.nan for stat in STATISTICS}
    stats = [values_ms.mean(), np.median(values_ms), *(np.percentile(values_ms, p) for p in PERCENTILES)]
    return {f"{stat}_{name}_ms": float(value) for stat, value in zip(STATISTICS, stats)}


def _benchmark_duration(records: list[RequestRecord]) -> float:
    finishes = [r.finish_time for r in records if r.finish_time is not None]
    if not finishes:
        raise ValueError("no request finished: pass duration_s explicitly")
    return max(finishes) - min(r.arrival_time for r in records)


def _within(latency_s: float | None, limit_ms: float | None) -> bool:
    return limit_ms is None or (latency_s is not None and latency_s * 1000.0 <= limit_ms)
