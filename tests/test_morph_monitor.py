"""Serving Monitor: windows, rates from the engine's arrival and completion counts, and the arrival-rate trend, by hand."""
import math
import random

import pytest

from morph.monitor import MonitorConfig, RateTrend, ServingMonitor, fit_rate_trend
from tests.morph_stats import step_stats


def observe_all(monitor: ServingMonitor, steps) -> None:
    for stats in steps:
        monitor.observe(stats)


def test_gauge_windows_hold_steps_of_the_last_window_only():
    monitor = ServingMonitor(MonitorConfig(short_window_s=1.0, long_window_s=2.0, trend_bin_s=0.5))
    used = [100, 400, 200, 800, 600, 300]                       # steps ending at 0.5, 1.0, ..., 3.0
    observe_all(monitor, [step_stats(0.5 * (i + 1), duration=0.5, kv_blocks_used=u) for i, u in enumerate(used)])
    usage = monitor.snapshot().kv_usage
    assert usage.last == pytest.approx(0.3)
    assert (usage.short.count, usage.short.mean, usage.short.max) == (2, pytest.approx(0.45), pytest.approx(0.6))
    assert usage.long.count == 4                                # (1.0, 3.0]: 200, 800, 600, 300
    assert usage.long.mean == pytest.approx((0.2 + 0.8 + 0.6 + 0.3) / 4)
    assert usage.long.max == pytest.approx(0.8)


def test_incremental_window_summaries_match_recomputation_from_the_raw_samples():
    rng = random.Random(0)
    config = MonitorConfig(short_window_s=0.3, long_window_s=1.0, trend_bin_s=0.25)
    monitor, history, now = ServingMonitor(config), [], 0.0
    for _ in range(400):
        now += rng.choice([0.0, 0.01, 0.05, 0.2, 0.7])
        delay = rng.random()
        monitor.observe(step_stats(now, duration=0.0, oldest_waiting_time=delay))
        history.append((now, delay))
        snapshot = monitor.snapshot()
        for window_s, stats in ((0.3, snapshot.queueing_delay_s.short), (1.0, snapshot.queueing_delay_s.long)):
            inside = [value for time, value in history if time > now - window_s]
            assert stats.count == len(inside)
            assert stats.total == pytest.approx(sum(inside), abs=1e-9)
            assert (stats.max == max(inside)) if inside else math.isnan(stats.max)


def test_arrival_and_completion_rates_are_the_engines_counts_per_second():
    monitor = ServingMonitor(MonitorConfig(short_window_s=1.0, long_window_s=4.0, trend_bin_s=1.0))
    observe_all(monitor, [
        step_stats(1.0, duration=1.0, num_arrivals=4),
        step_stats(2.0, duration=1.0),
        step_stats(3.0, duration=1.0, num_arrivals=1, num_finished=1),
        step_stats(4.0, duration=1.0, num_finished=3),
    ])
    snapshot = monitor.snapshot()
    assert snapshot.arrival_rate.long == pytest.approx(5 / 4)
    assert snapshot.arrival_rate.short == pytest.approx(0.0)
    assert snapshot.completion_rate.long == pytest.approx(4 / 4)
    assert snapshot.completion_rate.short == pytest.approx(3.0)
    assert snapshot.arrival_trend == fit_rate_trend([(1.0, 4), (2.0, 0), (3.0, 1), (4.0, 0)], 4.0, 4.0, 1.0)


def test_rates_divide_by_the_time_covered_so_far():
    monitor = ServingMonitor(MonitorConfig(short_window_s=1.0, long_window_s=5.0, trend_bin_s=0.5))
    observe_all(monitor, [
        step_stats(0.5, duration=0.5, num_finished=3),
        step_stats(1.0, duration=0.5, num_finished=1),
        step_stats(1.5, duration=0.5, num_finished=2),
    ])
    snapshot = monitor.snapshot()
    assert snapshot.completion_rate.long == pytest.approx(6 / 1.5)      # only 1.5 s observed yet
    assert snapshot.completion_rate.short == pytest.approx(3 / 1.0)     # steps ending in (0.5, 1.5]


def test_counters_and_latest_values():
    monitor = ServingMonitor(MonitorConfig(short_window_s=1.0, long_window_s=3.0, trend_bin_s=0.5))
    observe_all(monitor, [
        step_stats(1.0, blocked_on_kv=True),
        step_stats(2.5, blocked_on_kv=True),
        step_stats(3.0, kv_blocks_used=7, kv_blocks_capacity=10, num_running=2, num_waiting=5),
    ])
    snapshot = monitor.snapshot()
    assert (snapshot.blocked_on_kv.short.total, snapshot.blocked_on_kv.long.total) == (1.0, 2.0)
    assert (snapshot.time, snapshot.kv_blocks_used, snapshot.kv_blocks_capacity) == (3.0, 7, 10)
    assert (snapshot.num_running, snapshot.num_waiting) == (2, 5)


def test_trend_fit_recovers_a_linear_ramp():
    # bins of 1 s ending at now=4: counts 1, 2, 3, 4 -> rate rises by 1 req/s per second
    events = [(0.5, 1), (1.5, 2), (2.5, 3), (3.5, 4)]
    trend = fit_rate_trend(events, now=4.0, span_s=4.0, bin_s=1.0)
    assert trend.slope == pytest.approx(1.0)
    assert trend.level == pytest.approx(4.5)        # line through bin centres 0.5..3.5, evaluated at 4.0
    assert trend.rate_at(2.0) == pytest.approx(6.5)


def test_trend_is_flat_for_steady_arrivals_and_with_too_little_history():
    steady = [(t + 0.5, 3) for t in range(4)]
    assert fit_rate_trend(steady, now=4.0, span_s=4.0, bin_s=1.0) == RateTrend(pytest.approx(3.0), pytest.approx(0.0))
    assert fit_rate_trend([(0.7, 2)], now=1.0, span_s=1.0, bin_s=0.6) == RateTrend(2.0, 0.0)


def test_monitor_trend_follows_rising_arrivals():
    monitor = ServingMonitor(MonitorConfig(short_window_s=1.0, long_window_s=4.0, trend_bin_s=1.0))
    for second, arrivals in enumerate([1, 2, 3, 4], start=1):
        monitor.observe(step_stats(float(second), duration=1.0, num_arrivals=arrivals))
    assert monitor.snapshot().arrival_trend.slope == pytest.approx(1.0)


@pytest.mark.parametrize("fields, message", [
    (dict(kv_blocks_capacity=0), "kv_blocks_capacity must be > 0"),
    (dict(kv_blocks_used=11, kv_blocks_capacity=10), r"kv_blocks_used \(11\) must lie in \[0, 10\]"),
    (dict(duration=-0.1), "duration must be >= 0"),
])
def test_inconsistent_step_stats_are_rejected(fields, message):
    with pytest.raises(ValueError, match=message):
        ServingMonitor().observe(step_stats(1.0, **fields))


def test_steps_out_of_order_and_early_snapshot_are_rejected():
    monitor = ServingMonitor()
    with pytest.raises(ValueError, match="not observed any step"):
        monitor.snapshot()
    monitor.observe(step_stats(2.0))
    with pytest.raises(ValueError, match="out of order"):
        monitor.observe(step_stats(1.0))


@pytest.mark.parametrize("fields, message", [
    (dict(short_window_s=0.0), "short_window_s must be > 0"),
    (dict(trend_bin_s=-1.0), "trend_bin_s must be > 0"),
    (dict(short_window_s=6.0, long_window_s=5.0), "must not exceed long_window_s"),
    (dict(long_window_s=1.0, short_window_s=1.0, trend_bin_s=0.6), "must fit at least twice"),
])
def test_bad_monitor_config_fails_with_clear_message(fields, message):
    with pytest.raises(ValueError, match=message):
        MonitorConfig(**fields)
