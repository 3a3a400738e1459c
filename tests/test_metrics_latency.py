"""Latency metrics against a hand-computed four-request example (vLLM definitions)."""
import math

import pytest

from experiments.metrics.latency import SLO, latency_metrics
from experiments.metrics.records import RequestRecord, load_records, save_records
from swiftllm.server.structs import CompletionOutput, RequestMetrics, RequestOutput


def record(arrival, scheduled, token_times, finish, prompt_len, preemptions=0, reason="length"):
    return RequestRecord(request_id=f"r{arrival}", prompt_len=prompt_len, arrival_time=arrival,
                         first_scheduled_time=scheduled, token_times=token_times,
                         token_quantized_layers=[0] * len(token_times), finish_time=finish,
                         num_preemptions=preemptions, finish_reason=reason)


# A: ttft 1.0, e2el 2.0, tpot (2.0-1.0)/3, itl [0.2, 0.3, 0.5], queued 0.5, preempted once
# B: ttft 0.5, e2el 0.6, tpot 0.1, itl [0.1], queued 0
# C: ttft 3.0, e2el 3.0, one token (no tpot), queued 2.0
# D: aborted before its first token, preempted twice
RECORDS = [
    record(0.0, 0.5, [1.0, 1.2, 1.5, 2.0], 2.0, 100, preemptions=1),
    record(1.0, 1.0, [1.5, 1.6], 1.6, 50),
    record(2.0, 4.0, [5.0], 5.0, 20),
    record(3.0, None, [], 3.5, 10, preemptions=2, reason="abort"),
]


def test_per_request_quantities():
    a = RECORDS[0]
    assert (a.ttft_s, a.e2el_s, a.queueing_delay_s) == (1.0, 2.0, 0.5)
    assert a.tpot_s == pytest.approx(1.0 / 3)
    assert a.itls_s == pytest.approx([0.2, 0.3, 0.5])
    assert RECORDS[2].tpot_s is None and RECORDS[2].itls_s == []
    assert not RECORDS[3].completed and RECORDS[3].ttft_s is None


def test_counts_and_throughput():
    m = latency_metrics(RECORDS)
    assert (m["completed"], m["failed"], m["duration"]) == (3, 1, 5.0)
    assert (m["total_input_tokens"], m["total_output_tokens"]) == (170, 7)
    assert m["request_throughput"] == pytest.approx(0.6)
    assert m["output_throughput"] == pytest.approx(1.4)
    assert m["total_token_throughput"] == pytest.approx(35.4)
    assert (m["total_preemptions"], m["preempted_requests"]) == (3, 2)
    assert latency_metrics(RECORDS, duration_s=10.0)["request_throughput"] == pytest.approx(0.3)


def test_distributions_in_ms():
    m = latency_metrics(RECORDS)
    # TTFT [1000, 500, 3000]: linear-interpolated percentiles as numpy/vLLM.
    assert (m["mean_ttft_ms"], m["median_ttft_ms"]) == pytest.approx((1500.0, 1000.0))
    assert (m["p95_ttft_ms"], m["p99_ttft_ms"]) == pytest.approx((2800.0, 2960.0))
    assert (m["mean_tpot_ms"], m["median_tpot_ms"]) == pytest.approx((650 / 3, 650 / 3))
    assert (m["mean_itl_ms"], m["median_itl_ms"]) == pytest.approx((275.0, 250.0))
    assert (m["mean_e2el_ms"], m["median_e2el_ms"]) == pytest.approx((5600 / 3, 2000.0))
    assert (m["mean_queueing_delay_ms"], m["median_queueing_delay_ms"]) == pytest.approx((2500 / 3, 500.0))


def test_goodput_and_ttft_slo_violations():
    m = latency_metrics(RECORDS, slo=SLO(ttft_ms=1500, tpot_ms=200))
    # Only B meets both SLOs (A's TPOT is 333 ms, C's TTFT 3 s); D never completed.
    assert m["request_goodput"] == pytest.approx(1 / 5.0)
    # C violates the TTFT SLO; the aborted D counts as a violation too.
    assert m["ttft_slo_violation_rate"] == pytest.approx(2 / 4)
    unconstrained = latency_metrics(RECORDS)
    assert "request_goodput" not in unconstrained and "ttft_slo_violation_rate" not in unconstrained


def test_empty_distributions_are_nan_and_bad_inputs_fail():
    only_single_tokens = latency_metrics([RECORDS[2]])
    assert math.isnan(only_single_tokens["mean_tpot_ms"]) and math.isnan(only_single_tokens["p99_itl_ms"])
    with pytest.raises(ValueError, match="at least one request record"):
        latency_metrics([])
    with pytest.raises(ValueError, match="SLO ttft_ms must be > 0"):
        SLO(ttft_ms=0)
    with pytest.raises(ValueError, match="no request finished"):
        latency_metrics([record(0.0, None, [], None, 5, reason=None)])


def test_record_from_engine_output_round_trips_through_jsonl(tmp_path):
    completion = CompletionOutput(index=0, text="hi", token_ids=[4, 5], finish_reason="length", token_times=[1.5, 1.75],
                                  token_quantized_layers=[0, 3], token_precision_versions=[0, 1])
    output = RequestOutput(request_id="7", prompt=None, prompt_token_ids=[1, 2, 3], outputs=[completion], finished=True,
                           metrics=RequestMetrics(arrival_time=1.0, first_scheduled_time=1.25, first_token_time=1.5,
                                                  finished_time=1.75, num_preemptions=0))
    rec = RequestRecord.from_output(output, workload_index=4, dataset_id="q1", reference_answers=["hello"])
    assert (rec.prompt_len, rec.ttft_s, rec.tpot_s, rec.token_quantized_layers) == (3, 0.5, 0.25, [0, 3])
    assert load_records(save_records([rec], tmp_path / "run" / "requests.jsonl")) == [rec]
