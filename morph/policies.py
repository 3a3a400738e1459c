"""Policy presets: the monitor's windows plus the controller's rules, under the names the configs use.

- ``morph_accuracy``: the paper's accuracy mode: a higher trigger (KV usage > 95%, queueing delay
  > 300 ms), at most a quarter of the layers quantized, two layers per transition, slow windows.
- ``morph_performance``: the paper's performance mode: the paper's triggers (KV usage > 85%,
  queueing delay > 100 ms), every layer may be quantized, an eighth of the layers per transition,
  fast windows.
- ``morph_forecast``: accuracy mode's limits plus proactive morphing on the KV usage forecast from
  the arrival-rate trend (the paper's future work): it morphs before the reactive trigger on a ramp.
All use the paper's default direct ladder FP -> INT4; pass ``dataclasses.replace`` on a preset's
configs to change any value.
"""
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from morph.controller import ControllerConfig, ForecastConfig, MorphingController, load_swap_order
from morph.monitor import MonitorConfig, ServingMonitor


@dataclass(frozen=True, slots=True)
class MorphPolicy:
    """A named, consistent pair of monitor and controller configurations."""
    name: str
    monitor: MonitorConfig
    controller: ControllerConfig

    def __post_init__(self):
        if self.controller.cooldown_s < self.monitor.short_window_s:
            raise ValueError(
                f"cooldown_s ({self.controller.cooldown_s}) must be >= short_window_s ({self.monitor.short_window_s}): "
                "pressure is judged on the short window, so a shorter cooldown counts pre-transition pressure twice")

    def build(self) -> tuple[ServingMonitor, MorphingController]:
        return ServingMonitor(self.monitor), MorphingController(self.controller)


def accuracy_mode(num_layers: int, swap_order: Sequence[int] | None = None) -> MorphPolicy:
    controller = ControllerConfig(
        num_layers=num_layers, kv_usage_trigger=0.95, kv_usage_release=0.75, queue_delay_trigger_s=0.3,
        queue_delay_release_s=0.05, cooldown_s=1.0, layers_per_step=2,
        max_quantized_layers=math.ceil(num_layers / 4), swap_order=swap_order)
    monitor = MonitorConfig(short_window_s=1.0, long_window_s=5.0, trend_bin_s=0.5)
    return MorphPolicy("morph_accuracy", monitor, controller)


def performance_mode(num_layers: int, swap_order: Sequence[int] | None = None) -> MorphPolicy:
    controller = ControllerConfig(
        num_layers=num_layers, kv_usage_trigger=0.85, kv_usage_release=0.6, queue_delay_trigger_s=0.1,
        queue_delay_release_s=0.02, cooldown_s=0.5, layers_per_step=math.ceil(num_layers / 8),
        max_quantized_layers=num_layers, swap_order=swap_order)
    monitor = MonitorConfig(short_window_s=0.5, long_window_s=3.0, trend_bin_s=0.25)
    return MorphPolicy("morph_performance", monitor, controller)


def forecast_mode(num_layers: int, swap_order: Sequence[int] | None = None) -> MorphPolicy:
    accuracy = accuracy_mode(num_layers, swap_order)
    controller = replace(accuracy.controller, forecast=ForecastConfig(horizon_s=2.0))
    return MorphPolicy("morph_forecast", accuracy.monitor, controller)


PRESETS: dict[str, Callable[[int, Sequence[int] | None], MorphPolicy]] = {
    "morph_accuracy": accuracy_mode,
    "morph_performance": performance_mode,
    "morph_forecast": forecast_mode,
}


def make_policy(name: str, num_layers: int, swap_order_path: str | os.PathLike | None = None) -> MorphPolicy:
    """The preset ``name`` for a model of ``num_layers`` layers, with the swap order from a profiling file
    (front-to-back when ``swap_order_path`` is ``None``)."""
    if name not in PRESETS:
        raise ValueError(f"unknown morph policy {name!r}; expected one of {sorted(PRESETS)}")
    order = None if swap_order_path is None else load_swap_order(swap_order_path, num_layers)
    return PRESETS[name](num_layers, order)
