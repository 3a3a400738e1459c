"""Timelines of per-step engine statistics (KV capacity and usage, queue lengths, quantized layers).

A step reports the state at its end, so between steps a quantity holds its last reported value.
"""
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

TIMELINE_FIELDS = ("kv_blocks_used", "kv_blocks_capacity", "num_waiting", "num_running", "num_quantized_layers")


@dataclass(frozen=True)
class Timeline:
    times_s: np.ndarray                # [T] seconds from the run's start, non-decreasing
    series: dict[str, np.ndarray]      # name -> [T]

    def rows(self) -> list[dict[str, float]]:
        """One dict per time point (``time_s`` first), ready for CSV."""
        return [{"time_s": float(t), **{name: float(v[i]) for name, v in self.series.items()}}
                for i, t in enumerate(self.times_s)]


def timeline_from_steps(steps: Iterable, start_time: float = 0.0,
                        fields: tuple[str, ...] = TIMELINE_FIELDS) -> Timeline:
    """Collect ``fields`` of ``StepStats`` objects (or dicts loaded from JSONL), times re-based to ``start_time``."""
    steps = list(steps)
    if not steps:
        raise ValueError("a timeline needs at least one step")
    times_s = np.array([_field(s, "time") for s in steps], dtype=np.float64) - start_time   # [T]
    if np.any(np.diff(times_s) < 0):
        raise ValueError("step times must be non-decreasing")
    series = {name: np.array([_field(s, name) for s in steps], dtype=np.float64) for name in fields}
    return Timeline(times_s, series)


def resample(timeline: Timeline, period_s: float, end_s: float | None = None) -> Timeline:
    """Sample-and-hold onto the grid ``0, period_s, 2*period_s, ... <= end_s`` (default: the last step).

    A grid point takes the value of the last step at or before it; grid points before the first step
    take the first step's value.
    """
    if not period_s > 0:
        raise ValueError(f"period_s must be > 0, got {period_s}")
    end_s = float(timeline.times_s[-1]) if end_s is None else end_s
    grid_s = np.arange(0.0, end_s + period_s / 2, period_s)                             # [G]
    index = np.clip(np.searchsorted(timeline.times_s, grid_s, side="right") - 1, 0, None)  # [G]
    return Timeline(grid_s, {name: values[index] for name, values in timeline.series.items()})


def _field(step, name: str) -> float:
    return step[name] if isinstance(step, Mapping) else getattr(step, name)
