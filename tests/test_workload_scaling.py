"""Trace shaping: window selection, time downscaling, length scaling and clipping."""
import pytest

from experiments.workload.scaling import (
    TraceShaping, clip_lengths, limit_requests, override_lengths, scale_lengths, select_window, shape_trace,
    stretch_time,
)
from experiments.workload.traces import TraceRequest

TRACE = [TraceRequest(0.0, 100, 10), TraceRequest(2.0, 200, 20), TraceRequest(5.0, 300, 30),
         TraceRequest(9.0, 400, 40)]


def test_window_is_half_open_and_rebased_to_its_start():
    window = select_window(TRACE, start_s=2.0, duration_s=7.0)
    assert window == [TraceRequest(0.0, 200, 20), TraceRequest(3.0, 300, 30)]
    assert select_window(TRACE, 5.0, None) == [TraceRequest(0.0, 300, 30), TraceRequest(4.0, 400, 40)]


def test_time_scale_multiplies_offsets_and_divides_the_rate():
    stretched = stretch_time(TRACE, 4.75)
    assert [r.arrival_s for r in stretched] == pytest.approx([0.0, 9.5, 23.75, 42.75])
    rate_before = (len(TRACE) - 1) / TRACE[-1].arrival_s
    rate_after = (len(stretched) - 1) / stretched[-1].arrival_s
    assert rate_after == pytest.approx(rate_before / 4.75)
    with pytest.raises(ValueError, match="time_scale must be > 0"):
        stretch_time(TRACE, 0.0)


def test_length_scaling_rounds_and_keeps_one_token():
    scaled = scale_lengths([TraceRequest(0.0, 3, 1)], prompt_scale=0.5, output_scale=0.1)
    assert scaled == [TraceRequest(0.0, 2, 1)]


def test_fixed_lengths_replace_only_what_is_given():
    assert override_lengths(TRACE[:1], 512, None) == [TraceRequest(0.0, 512, 10)]
    assert override_lengths(TRACE[:1], None, 256) == [TraceRequest(0.0, 100, 256)]


def test_clipping_cuts_the_prompt_first_and_respects_minimums():
    requests = [TraceRequest(0.0, 1000, 100), TraceRequest(0.0, 10, 1000), TraceRequest(0.0, 1, 1)]
    clipped = clip_lengths(requests, max_model_len=512, min_prompt_len=32, min_output_len=4)
    assert [(r.prompt_len, r.output_len) for r in clipped] == [(412, 100), (32, 480), (32, 4)]
    assert all(r.prompt_len + r.output_len <= 512 for r in clipped)
    with pytest.raises(ValueError, match="max_model_len 8 < min_prompt_len"):
        clip_lengths(requests, max_model_len=8, min_prompt_len=8, min_output_len=1)


def test_shape_trace_applies_window_before_the_stretch():
    shaping = TraceShaping(start_s=2.0, duration_s=7.0, time_scale=2.0, max_model_len=220, max_requests=1)
    assert shape_trace(TRACE, shaping) == [TraceRequest(0.0, 200, 20)]
    assert [r.arrival_s for r in shape_trace(TRACE, TraceShaping(start_s=2.0, time_scale=2.0))] == [0.0, 6.0, 14.0]
    assert limit_requests(TRACE, None) == TRACE


@pytest.mark.parametrize("kwargs, message", [
    ({"time_scale": -1.0}, "time_scale must be > 0"),
    ({"duration_s": 0.0}, "duration_s must be > 0"),
    ({"start_s": -1.0}, "start_s must be >= 0"),
    ({"max_model_len": 10, "min_prompt_len": 10}, "max_model_len 10 < min_prompt_len"),
    ({"fixed_output_len": 0}, "fixed_output_len must be >= 1"),
    ({"max_requests": 0}, "max_requests must be >= 1"),
])
def test_bad_shaping_values_fail_at_construction(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TraceShaping(**kwargs)


def test_keep_every_thins_the_window_and_keeps_its_span():
    trace = [TraceRequest(float(i), 10, 5) for i in range(12)]
    thinned = shape_trace(trace, TraceShaping(keep_every=3))
    assert [r.arrival_s for r in thinned] == [0.0, 3.0, 6.0, 9.0]
    with pytest.raises(ValueError, match="keep_every"):
        TraceShaping(keep_every=0)
