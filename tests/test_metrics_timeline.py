"""Step-stat timelines: re-basing, sample-and-hold resampling, StepStats objects and JSONL dicts."""
import numpy as np
import pytest

from experiments.metrics.timeline import resample, timeline_from_steps
from swiftllm.server.structs import StepStats


def step(time, used, capacity, quantized):
    return StepStats(time=time, duration=0.1, num_running=1, num_waiting=0, num_prefill_tokens=0,
                     num_decode_tokens=1, kv_blocks_used=used, kv_blocks_capacity=capacity,
                     oldest_waiting_time=0.0, blocked_on_kv=False, num_preemptions=0,
                     num_quantized_layers=quantized)


STEPS = [step(10.5, 3, 8, 0), step(11.0, 5, 10, 2), step(12.2, 2, 8, 0)]


def test_timeline_rebases_times():
    timeline = timeline_from_steps(STEPS, start_time=10.0)
    np.testing.assert_allclose(timeline.times_s, [0.5, 1.0, 2.2])
    np.testing.assert_array_equal(timeline.series["kv_blocks_capacity"], [8, 10, 8])
    assert timeline.rows()[1] == pytest.approx({"time_s": 1.0, "kv_blocks_used": 5, "kv_blocks_capacity": 10,
                                                "num_waiting": 0, "num_running": 1, "num_quantized_layers": 2})


def test_resample_holds_the_last_reported_value():
    grid = resample(timeline_from_steps(STEPS, start_time=10.0), period_s=0.5, end_s=3.0)
    np.testing.assert_allclose(grid.times_s, [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0])
    np.testing.assert_array_equal(grid.series["kv_blocks_used"], [3, 3, 5, 5, 5, 2, 2])
    np.testing.assert_array_equal(grid.series["num_quantized_layers"], [0, 0, 2, 2, 2, 0, 0])
    np.testing.assert_allclose(resample(timeline_from_steps(STEPS, 10.0), 1.0).times_s, [0.0, 1.0, 2.0])


def test_steps_loaded_as_dicts_work_too():
    dicts = [{"time": 1.0, "kv_blocks_used": 4}, {"time": 2.0, "kv_blocks_used": 6}]
    timeline = timeline_from_steps(dicts, fields=("kv_blocks_used",))
    np.testing.assert_array_equal(resample(timeline, 0.5).series["kv_blocks_used"], [4, 4, 4, 4, 6])


def test_bad_timelines_fail_clearly():
    with pytest.raises(ValueError, match="at least one step"):
        timeline_from_steps([])
    with pytest.raises(ValueError, match="non-decreasing"):
        timeline_from_steps(STEPS[::-1])
    with pytest.raises(ValueError, match="period_s must be > 0"):
        resample(timeline_from_steps(STEPS), 0.0)
