"""The policy comparison table: ratios against full precision, computed by hand."""
import math
from types import SimpleNamespace

import pytest

from experiments.replay.comparison import compare
from experiments.metrics import RequestRecord
from experiments.replay.run import ReplayResult


def _result(row: dict, outputs: list[list[int]], capacities: list[int]) -> ReplayResult:
    records = [RequestRecord(request_id=str(i), prompt_len=4, arrival_time=0.0, first_scheduled_time=0.0,
                             token_times=[], token_quantized_layers=[], finish_time=1.0, output_token_ids=out)
               for i, out in enumerate(outputs)]
    steps = [SimpleNamespace(kv_blocks_capacity=c) for c in capacities]
    return ReplayResult(row=row, records=records, steps=steps, fp_kv_blocks=capacities[0], start_time=0.0)


def test_each_policy_is_compared_with_full_precision():
    fp = _result({"policy": "fp", "p95_ttft_ms": 9000.0, "ttft_slo_violation_rate": 0.5, "output_throughput": 20.0,
                  "p99_tpot_ms": 60.0, "rouge_l": 0.20, "peak_kv_blocks": 224}, [[1, 2, 3, 4], [5, 6]], [224, 224])
    morph = _result({"policy": "morph", "p95_ttft_ms": 3000.0, "ttft_slo_violation_rate": 0.05,
                     "output_throughput": 36.0, "p99_tpot_ms": 48.0, "rouge_l": 0.198, "peak_kv_blocks": 350},
                    [[1, 2, 9, 9], [5, 6]], [224, 350, 224])
    rows = {row["policy"]: row for row in compare({"fp": fp, "morph": morph}, "fp")}
    assert rows["fp"]["p95_ttft_reduction"] == 1 and rows["fp"]["mean_prefix_agreement"] == 1
    m = rows["morph"]
    assert m["p95_ttft_reduction"] == pytest.approx(3.0)
    assert m["slo_violations_vs_fp"] == pytest.approx(0.9)          # 0.05 against 0.5: 90 % fewer
    assert m["throughput_vs_fp"] == pytest.approx(1.8) and m["p99_tpot_reduction"] == pytest.approx(1.25)
    assert m["rouge_l_change"] == pytest.approx(-0.01)
    assert m["mean_prefix_agreement"] == pytest.approx((2 / 4 + 1) / 2) and m["exact_match_rate"] == 0.5
    assert m["peak_kv_blocks"] == 350


def test_no_slo_ratio_when_full_precision_has_no_violation():
    fp = _result({"policy": "fp", "p95_ttft_ms": 100.0, "ttft_slo_violation_rate": 0.0, "output_throughput": 1.0,
                  "p99_tpot_ms": 5.0}, [[1]], [8])
    [row] = compare({"fp": fp}, "fp")
    assert "slo_violations_vs_fp" not in row and "rouge_l_change" not in row
    [simulated] = compare({"fp": fp}, "fp", simulated=True)
    assert "mean_prefix_agreement" not in simulated           # a simulated model writes no text to agree on


def test_a_baseline_without_any_rouge_overlap_gives_a_nan_change_not_an_error():
    row = {"p95_ttft_ms": 100.0, "ttft_slo_violation_rate": 0.0, "output_throughput": 1.0, "p99_tpot_ms": 5.0}
    fp = _result({"policy": "fp", **row, "rouge_l": 0.0}, [[1]], [8])
    morph = _result({"policy": "morph", **row, "rouge_l": 0.1}, [[1]], [8])
    rows = {r["policy"]: r for r in compare({"fp": fp, "morph": morph}, "fp")}
    assert math.isnan(rows["morph"]["rouge_l_change"])
