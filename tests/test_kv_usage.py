"""KV usage of a run from its steps, computed by hand."""
import pytest

from experiments.metrics.kv_usage import kv_usage_metrics
from tests.morph_stats import step_stats


def test_time_weighted_utilization_and_blocks_beyond_the_full_precision_capacity():
    steps = [step_stats(0.0, kv_blocks_used=50, kv_blocks_capacity=100),      # held 1 s at 0.5
             step_stats(1.0, kv_blocks_used=150, kv_blocks_capacity=200),     # held 3 s at 0.75, 50 beyond FP's 100
             step_stats(4.0, kv_blocks_used=10, kv_blocks_capacity=100)]      # the last step: no weight
    metrics = kv_usage_metrics(steps, fp_capacity_blocks=100)
    assert metrics["mean_kv_utilization"] == pytest.approx((0.5 * 1 + 0.75 * 3) / 4)
    assert (metrics["peak_kv_blocks_used"], metrics["peak_kv_blocks_beyond_fp"]) == (150, 50)
    assert metrics["kv_block_seconds_beyond_fp"] == pytest.approx(150.0)
    assert metrics["share_time_beyond_fp_kv"] == pytest.approx(0.75)


def test_a_single_step_and_no_steps():
    assert kv_usage_metrics([step_stats(2.0, kv_blocks_used=30, kv_blocks_capacity=60)], 60)["mean_kv_utilization"] == 0.5
    with pytest.raises(ValueError, match="at least one step"):
        kv_usage_metrics([], 100)
