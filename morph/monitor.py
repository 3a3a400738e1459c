"""Serving Monitor: short-window metrics of the engine, fed with one ``StepStats`` per step boundary.

Windows run on the engine clock: a window of length L at time ``now`` holds the steps that ended in
``(now - L, now]``. Gauges (KV usage, queueing delay, blocked steps) get one sample per step. Rates
(arrivals, completions) are window totals divided by the time the window covers (less than L right after
start); both are the engine's own counts (``StepStats.num_arrivals``, ``num_finished``: every request added,
and every request that ended, aborts included).

The snapshot holds what the controller and the request dispatcher read, nothing more.
"""
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from swiftllm.server.structs import StepStats


@dataclass(frozen=True, slots=True)
class MonitorConfig:
    """Window lengths in seconds of engine time.

    ``long_window_s`` is also how long load must stay low before the controller restores precision;
    ``trend_bin_s`` is the bin width of the arrival-rate trend fit over the long window.
    """
    short_window_s: float = 1.0
    long_window_s: float = 5.0
    trend_bin_s: float = 0.5

    def __post_init__(self):
        for name in ("short_window_s", "long_window_s", "trend_bin_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.short_window_s > self.long_window_s:
            raise ValueError(
                f"short_window_s ({self.short_window_s}) must not exceed long_window_s ({self.long_window_s})")
        if 2 * self.trend_bin_s > self.long_window_s:
            raise ValueError(
                f"trend_bin_s ({self.trend_bin_s}) must fit at least twice in long_window_s ({self.long_window_s})")


@dataclass(frozen=True, slots=True)
class WindowStats:
    """One metric over one window; ``mean`` and ``max`` are NaN when the window holds no sample."""
    mean: float
    max: float
    total: float
    count: int


@dataclass(frozen=True, slots=True)
class MetricSummary:
    """Latest sample and short/long window statistics of one metric (NaN until a sample exists)."""
    last: float
    short: WindowStats
    long: WindowStats


@dataclass(frozen=True, slots=True)
class WindowRates:
    """A per-second rate over the short and the long window."""
    short: float
    long: float


@dataclass(frozen=True, slots=True)
class RateTrend:
    """Least-squares line through the binned arrival rate: ``level`` (req/s) at the snapshot time, ``slope`` (req/s²)."""
    level: float
    slope: float

    def rate_at(self, seconds_ahead: float) -> float:
        return self.level + self.slope * seconds_ahead


@dataclass(frozen=True, slots=True)
class MonitorSnapshot:
    """Everything the controller may look at, as of the last observed step. Times in seconds."""
    time: float
    kv_usage: MetricSummary            # kv_blocks_used / kv_blocks_capacity, in [0, 1]
    queueing_delay_s: MetricSummary    # how long the head of the waiting queue has waited
    blocked_on_kv: MetricSummary       # 1.0 for a step blocked on KV blocks, else 0.0 (window ``total`` = count)
    arrival_rate: WindowRates          # requests/s
    completion_rate: WindowRates       # requests/s
    arrival_trend: RateTrend           # requests/s over the long window
    kv_blocks_used: int
    kv_blocks_capacity: int
    num_running: int
    num_waiting: int


class _SlidingWindow:
    """Samples ``(time, value)`` whose time lies in ``(now - length_s, now]``, with an O(1) running
    total and a monotonic deque of the maxima, so a summary costs nothing per retained sample."""

    def __init__(self, length_s: float):
        self.length_s = length_s
        self.samples: deque[tuple[float, float]] = deque()
        self._total = 0.0
        self._maxima: deque[tuple[float, float]] = deque()     # decreasing values: the window max first

    def add(self, time: float, values: Sequence[float]) -> None:
        for value in values:
            self.samples.append((time, value))
            self._total += value
            while self._maxima and self._maxima[-1][1] <= value:
                self._maxima.pop()
            self._maxima.append((time, value))
        self._evict_before(time - self.length_s)

    def _evict_before(self, horizon: float) -> None:
        while self.samples and self.samples[0][0] <= horizon:
            self._total -= self.samples.popleft()[1]
        while self._maxima and self._maxima[0][0] <= horizon:
            self._maxima.popleft()
        if not self.samples:
            self._total = 0.0       # drop the rounding residue of the running subtraction

    def stats(self) -> WindowStats:
        count = len(self.samples)
        if count == 0:
            return WindowStats(math.nan, math.nan, 0.0, 0)
        return WindowStats(self._total / count, self._maxima[0][1], self._total, count)


class _MetricTracker:
    """Short and long windows of one metric, and its latest sample."""

    def __init__(self, config: MonitorConfig):
        self.short = _SlidingWindow(config.short_window_s)
        self.long = _SlidingWindow(config.long_window_s)
        self.last = math.nan

    def add(self, time: float, values: Sequence[float]) -> None:
        self.short.add(time, values)
        self.long.add(time, values)
        if values:
            self.last = values[-1]

    def summary(self) -> MetricSummary:
        return MetricSummary(self.last, self.short.stats(), self.long.stats())

    def rates(self, covered_s: float) -> WindowRates:
        """Window totals per second, each window counted only over the ``covered_s`` seconds observed."""
        return WindowRates(
            _per_second(self.short.stats().total, min(self.short.length_s, covered_s)),
            _per_second(self.long.stats().total, min(self.long.length_s, covered_s)),
        )


def _per_second(total: float, seconds: float) -> float:
    return total / seconds if seconds > 0 else 0.0


def fit_rate_trend(events: Sequence[tuple[float, float]], now: float, span_s: float, bin_s: float) -> RateTrend:
    """Fit a line to the event rate over the last ``span_s`` seconds, binned by ``bin_s``.

    ``events`` are ``(time, count)`` pairs. Bins are aligned to end at ``now``; only whole bins inside
    the span are used. With fewer than two bins the trend is flat at the span's mean rate.
    """
    num_bins = math.floor(span_s / bin_s + 1e-9)
    if num_bins < 2:
        return RateTrend(_per_second(sum(count for _, count in events), span_s), 0.0)
    counts = [0.0] * num_bins
    for time, count in events:
        age_bins = math.floor((now - time) / bin_s)
        if age_bins < num_bins:
            counts[num_bins - 1 - age_bins] += count
    centers = [now - (num_bins - index - 0.5) * bin_s for index in range(num_bins)]    # [num_bins]
    rates = [count / bin_s for count in counts]                                       # [num_bins]
    mean_center, mean_rate = sum(centers) / num_bins, sum(rates) / num_bins
    spread = sum((c - mean_center) ** 2 for c in centers)
    slope = sum((c - mean_center) * (r - mean_rate) for c, r in zip(centers, rates)) / spread
    return RateTrend(mean_rate + slope * (now - mean_center), slope)


def _check_step(stats: StepStats, previous: StepStats | None) -> None:
    if stats.duration < 0:
        raise ValueError(f"step duration must be >= 0, got {stats.duration}")
    if stats.kv_blocks_capacity <= 0:
        raise ValueError(f"kv_blocks_capacity must be > 0, got {stats.kv_blocks_capacity}")
    if not 0 <= stats.kv_blocks_used <= stats.kv_blocks_capacity:
        raise ValueError(f"kv_blocks_used ({stats.kv_blocks_used}) must lie in [0, {stats.kv_blocks_capacity}]")
    if previous is not None and stats.time < previous.time:
        raise ValueError(f"step stats out of order: time {stats.time} after {previous.time}")


class ServingMonitor:
    """Keeps short-window serving metrics; call ``observe`` at every step boundary, then ``snapshot``."""

    def __init__(self, config: MonitorConfig | None = None):
        self.config = config or MonitorConfig()
        names = ("kv_usage", "queueing_delay_s", "blocked_on_kv", "arrivals", "completions")
        self._trackers = {name: _MetricTracker(self.config) for name in names}
        self._start_time: float | None = None
        self._last: StepStats | None = None

    def observe(self, stats: StepStats) -> None:
        _check_step(stats, self._last)
        if self._start_time is None:
            self._start_time = stats.time - stats.duration
        samples = {
            "kv_usage": [stats.kv_blocks_used / stats.kv_blocks_capacity],
            "queueing_delay_s": [stats.oldest_waiting_time],
            "blocked_on_kv": [float(stats.blocked_on_kv)],
            "arrivals": [float(stats.num_arrivals)],
            "completions": [float(stats.num_finished)],
        }
        for name, values in samples.items():
            self._trackers[name].add(stats.time, values)
        self._last = stats

    def snapshot(self) -> MonitorSnapshot:
        if self._last is None:
            raise ValueError("the monitor has not observed any step yet")
        last, trackers = self._last, self._trackers
        covered_s = last.time - self._start_time
        trend_span_s = min(self.config.long_window_s, covered_s)
        return MonitorSnapshot(
            time=last.time,
            kv_usage=trackers["kv_usage"].summary(),
            queueing_delay_s=trackers["queueing_delay_s"].summary(),
            blocked_on_kv=trackers["blocked_on_kv"].summary(),
            arrival_rate=trackers["arrivals"].rates(covered_s),
            completion_rate=trackers["completions"].rates(covered_s),
            arrival_trend=fit_rate_trend(
                trackers["arrivals"].long.samples, last.time, trend_span_s, self.config.trend_bin_s),
            kv_blocks_used=last.kv_blocks_used,
            kv_blocks_capacity=last.kv_blocks_capacity,
            num_running=last.num_running,
            num_waiting=last.num_waiting,
        )
