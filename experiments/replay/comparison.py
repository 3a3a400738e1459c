"""Policies against a baseline (full precision) on the same workload: ratios, quality changes with paired bootstrap
95 % intervals over requests, and token agreement with the baseline's outputs.

Ratios named ``*_reduction`` are baseline / policy (above 1: the policy is lower), ``throughput_vs_fp`` and
``tpot_ratio_*`` are policy / baseline, ``rouge_l_change`` is policy / baseline - 1; a ratio over zero is NaN.
``slo_violations_vs_fp`` is the share of the baseline's SLO violations the policy removed (1 - policy / baseline;
absent when the baseline had none). ``<metric>_vs_fp_diff`` is the mean per-request difference policy - baseline of
a quality score, with ``_ci_low`` / ``_ci_high`` its interval.
"""
import math

from experiments.metrics import prefix_agreement, token_agreement
from experiments.metrics.bootstrap import MeanInterval, bootstrap_mean_ci, paired_bootstrap_ci
from experiments.replay.run import ReplayResult

QUALITY_METRICS = ("rouge_l", "f1")
TPOT_STATISTICS = ("mean", "p95", "p99")


def compare(results: dict[str, ReplayResult], baseline: str, simulated: bool = False) -> list[dict]:
    """One row per policy, in ``results``' order; ``results[baseline]`` is the reference."""
    if baseline not in results:
        raise ValueError(f"the comparison is against {baseline!r}, which is not among {list(results)}")
    base = results[baseline]
    return [_compared(result, base, simulated) for result in results.values()]


def _compared(result: ReplayResult, base: ReplayResult, simulated: bool) -> dict:
    row, ref = dict(result.row), base.row
    row["p95_ttft_reduction"] = _ratio(ref["p95_ttft_ms"], row["p95_ttft_ms"])
    if ref["ttft_slo_violation_rate"] > 0:
        row["slo_violations_vs_fp"] = 1 - row["ttft_slo_violation_rate"] / ref["ttft_slo_violation_rate"]
    row["throughput_vs_fp"] = _ratio(row["output_throughput"], ref["output_throughput"])
    row["p99_tpot_reduction"] = _ratio(ref["p99_tpot_ms"], row["p99_tpot_ms"])
    for stat in TPOT_STATISTICS:
        if f"{stat}_tpot_ms" in row:
            row[f"tpot_ratio_{stat}"] = _ratio(row[f"{stat}_tpot_ms"], ref[f"{stat}_tpot_ms"])
    for stat in ("mean", "p95"):
        if f"{stat}_queueing_delay_ms" in row:
            row[f"{stat}_queueing_delay_reduction"] = _ratio(ref[f"{stat}_queueing_delay_ms"],
                                                             row[f"{stat}_queueing_delay_ms"])
    if "rouge_l" in row:
        row["rouge_l_change"] = _ratio(row["rouge_l"], ref["rouge_l"]) - 1
    row.update(_quality_differences(result.metadata.get("request_quality", {}),
                                    base.metadata.get("request_quality", {})))
    if not simulated:
        row.update(_agreement(result, base))
    return row


def _quality_differences(scores: dict[str, list[float]], base_scores: dict[str, list[float]]) -> dict:
    row = {}
    for metric in QUALITY_METRICS:
        if metric in scores and metric in base_scores:
            row.update(_interval_columns(f"{metric}_vs_fp_diff",
                                         paired_bootstrap_ci(base_scores[metric], scores[metric])))
    return row


def _agreement(result: ReplayResult, base: ReplayResult) -> dict:
    outputs, base_outputs = [r.output_token_ids for r in result.records], [r.output_token_ids for r in base.records]
    per_request = [prefix_agreement(ref, out) for ref, out in zip(base_outputs, outputs)]
    interval = bootstrap_mean_ci(per_request)
    return {**token_agreement(base_outputs, outputs), "mean_prefix_agreement_ci_low": interval.low,
            "mean_prefix_agreement_ci_high": interval.high}


def _interval_columns(name: str, interval: MeanInterval) -> dict:
    return {name: interval.mean, f"{name}_ci_low": interval.low, f"{name}_ci_high": interval.high}


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else math.nan
