"""Morphing Controller: a pure policy from monitor snapshots to morph plans.

``decide(snapshot, state)`` depends only on its arguments and the configuration; it touches no engine
state, so the same inputs always give the same plan.

Rules (paper section 3.1, 3.4):
- **Pressure** (any of): a step blocked on KV blocks within the short window; mean KV usage over the
  short window above ``kv_usage_trigger``; mean queueing delay over the short window above
  ``queue_delay_trigger_s``; with a forecast, the KV usage predicted ``horizon_s`` ahead above the
  trigger. Pressure lowers ``layers_per_step`` layers by one rung of the precision ladder.
- **Relief** (all of, over the whole long window, which is thus the sustained-low duration): no blocked
  step, peak KV usage at most ``kv_usage_release``, peak queueing delay at most
  ``queue_delay_release_s``; with a forecast, the predicted KV usage at most the release threshold too.
  Relief raises ``layers_per_step`` layers by one rung.
- **Cooldown**: no plan until ``cooldown_s`` after the previous transition.
- **Order**: lowering is breadth-first along the ladder: layers nearer full precision go first, ties in
  swap order; at most ``max_quantized_layers`` layers leave full precision. Raising undoes lowering in
  reverse (least precise first, ties in reverse swap order), so with the direct ladder FP -> INT4 the
  quantized layers are always a prefix of the swap order.
"""
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

from morph.monitor import MonitorSnapshot
from morph.plan import MorphPlan, MorphState, Precision, parse_precisions

logger = logging.getLogger(__name__)


def validate_swap_order(order: Sequence[int], num_layers: int) -> tuple[int, ...]:
    """Return ``order`` as a tuple if it is a permutation of ``range(num_layers)``, else raise ``ValueError``."""
    if any(isinstance(layer, bool) or not isinstance(layer, int) for layer in order):
        raise ValueError(f"swap order must contain integer layer indices, got {list(order)}")
    if sorted(order) != list(range(num_layers)):
        missing = sorted(set(range(num_layers)) - set(order))
        duplicated = sorted({layer for layer in order if list(order).count(layer) > 1})
        out_of_range = sorted({layer for layer in order if not 0 <= layer < num_layers})
        raise ValueError(
            f"swap order must be a permutation of range({num_layers}): "
            f"missing {missing}, duplicated {duplicated}, out of range {out_of_range}")
    return tuple(order)


def load_swap_order(path: str | os.PathLike, num_layers: int) -> tuple[int, ...]:
    """Read a swap order from a profiling JSON file: a list of layer indices, or an object with ``"order"``."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"swap order file not found: {path} (write one with the layer profiling entry point)")
    with open(path) as file:
        try:
            content = json.load(file)
        except json.JSONDecodeError as error:
            raise ValueError(f"swap order file {path} is not valid JSON: {error}") from None
    order = content.get("order") if isinstance(content, dict) else content
    if not isinstance(order, list):
        raise ValueError(f"swap order file {path} must hold a list of layer indices or an object with an 'order' list")
    return validate_swap_order(order, num_layers)


@dataclass(frozen=True, slots=True)
class ForecastConfig:
    """Proactive morphing: act on the KV usage predicted ``horizon_s`` seconds ahead."""
    horizon_s: float = 2.0

    def __post_init__(self):
        if not self.horizon_s > 0:
            raise ValueError(f"forecast horizon_s must be > 0, got {self.horizon_s}")


@dataclass(frozen=True, slots=True)
class ControllerConfig:
    """Thresholds and limits of the controller. Usage thresholds are fractions of KV capacity; times in s.

    ``max_quantized_layers`` defaults to every layer; ``swap_order`` to front-to-back; ``ladder`` lists
    the precisions a layer steps through, starting at FP (the paper's default is direct FP -> INT4).
    After construction ``max_quantized_layers`` is an int and ``ladder`` and ``swap_order`` are tuples.
    """
    num_layers: int
    kv_usage_trigger: float = 0.85
    kv_usage_release: float = 0.6
    queue_delay_trigger_s: float = 0.1
    queue_delay_release_s: float = 0.02
    cooldown_s: float = 1.0
    layers_per_step: int = 2
    max_quantized_layers: int | None = None
    ladder: Sequence[str | Precision] = (Precision.FP, Precision.INT4)
    swap_order: Sequence[int] | None = None
    forecast: ForecastConfig | None = None

    def __post_init__(self):
        if self.num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {self.num_layers}")
        _check_thresholds("kv_usage", self.kv_usage_trigger, self.kv_usage_release)
        _check_thresholds("queue_delay", self.queue_delay_trigger_s, self.queue_delay_release_s)
        if self.kv_usage_trigger > 1:
            raise ValueError(f"kv_usage_trigger is a fraction of capacity and must be <= 1, got {self.kv_usage_trigger}")
        if self.cooldown_s < 0:
            raise ValueError(f"cooldown_s must be >= 0, got {self.cooldown_s}")
        if self.layers_per_step < 1:
            raise ValueError(f"layers_per_step must be >= 1, got {self.layers_per_step}")
        object.__setattr__(self, "max_quantized_layers", _check_cap(self.max_quantized_layers, self.num_layers))
        object.__setattr__(self, "ladder", check_ladder(self.ladder))
        order = range(self.num_layers) if self.swap_order is None else self.swap_order
        object.__setattr__(self, "swap_order", validate_swap_order(order, self.num_layers))


def _check_thresholds(metric: str, trigger: float, release: float) -> None:
    if trigger <= 0 or release < 0:
        raise ValueError(f"{metric} trigger must be > 0 and release >= 0, got trigger {trigger}, release {release}")
    if release >= trigger:
        raise ValueError(f"{metric} release ({release}) must be below its trigger ({trigger}) for hysteresis")


def _check_cap(cap: int | None, num_layers: int) -> int:
    """The cap on quantized layers; ``None`` means every layer."""
    cap = num_layers if cap is None else cap
    if not 0 <= cap <= num_layers:
        raise ValueError(f"max_quantized_layers must lie in [0, num_layers={num_layers}], got {cap}")
    return cap


def check_ladder(ladder: Sequence[str | Precision]) -> tuple[Precision, ...]:
    """The ladder as ``Precision``s if it starts at FP and steps down strictly, else ``ValueError``."""
    rungs = parse_precisions(ladder)
    ranks = [list(Precision).index(p) for p in rungs]
    if len(rungs) < 2 or rungs[0] != Precision.FP or ranks != sorted(set(ranks)):
        names = [p.value for p in Precision]
        raise ValueError(f"ladder must start at 'fp' and step down strictly in {names}, got {[p.value for p in rungs]}")
    return rungs


class MorphingController:
    """Turns ``MonitorSnapshot``s into ``MorphPlan``s following ``ControllerConfig`` (see module docstring)."""

    def __init__(self, config: ControllerConfig):
        self.config = config
        self._order_position = {layer: position for position, layer in enumerate(config.swap_order)}

    def decide(self, snapshot: MonitorSnapshot, state: MorphState) -> MorphPlan | None:
        """The next plan, or ``None`` to keep the current precisions."""
        rungs = self._rungs(state)
        if snapshot.time - state.last_transition_time < self.config.cooldown_s:
            return None
        pressure = self._pressure(snapshot)
        if pressure is not None:
            plan = self._plan(rungs, self._layers_to_lower(rungs), +1, pressure)
        elif self._relieved(snapshot):
            plan = self._plan(rungs, self._layers_to_raise(rungs), -1, "load stayed low over the long window")
        else:
            plan = None
        if plan is not None:
            logger.debug("morph plan at t=%.3f: %d quantized layers (%s)", snapshot.time, plan.num_quantized_layers,
                         plan.reason)
        return plan

    def forecast_kv_usage(self, snapshot: MonitorSnapshot) -> float:
        """KV usage expected ``horizon_s`` ahead from a fluid model of the request population.

        Demand grows by the waiting requests plus the arrivals the rate trend predicts over the horizon,
        minus the completions at the current completion rate, each needing as many blocks as a running
        request holds on average now. With nothing running there is no per-request size: usage stays.
        """
        horizon_s = self.config.forecast.horizon_s
        if snapshot.num_running == 0:
            return snapshot.kv_usage.last
        blocks_per_request = snapshot.kv_blocks_used / snapshot.num_running
        trend = snapshot.arrival_trend
        arrivals = max(0.0, (trend.level + trend.rate_at(horizon_s)) / 2 * horizon_s)
        completions = snapshot.completion_rate.long * horizon_s
        demand_blocks = snapshot.kv_blocks_used + (snapshot.num_waiting + arrivals - completions) * blocks_per_request
        return demand_blocks / snapshot.kv_blocks_capacity

    def _rungs(self, state: MorphState) -> list[int]:
        """Each layer's position on the ladder (0 = full precision)."""
        ladder = self.config.ladder
        if len(state.layer_precisions) != self.config.num_layers:
            raise ValueError(
                f"state has {len(state.layer_precisions)} layers but the controller expects {self.config.num_layers}")
        for layer, precision in enumerate(state.layer_precisions):
            if precision not in ladder:
                raise ValueError(f"layer {layer} is at {precision.value}, which is not on the ladder "
                                 f"{' -> '.join(p.value for p in ladder)}")
        return [ladder.index(precision) for precision in state.layer_precisions]

    def _pressure(self, snapshot: MonitorSnapshot) -> str | None:
        """Why the system is under pressure, or ``None``."""
        config = self.config
        blocked_steps = int(snapshot.blocked_on_kv.short.total)
        if blocked_steps > 0:
            return f"blocked on KV blocks in {blocked_steps} recent steps"
        if snapshot.kv_usage.short.mean > config.kv_usage_trigger:
            return f"KV usage {snapshot.kv_usage.short.mean:.3f} > {config.kv_usage_trigger}"
        if snapshot.queueing_delay_s.short.mean > config.queue_delay_trigger_s:
            return f"queueing delay {snapshot.queueing_delay_s.short.mean:.3f} s > {config.queue_delay_trigger_s} s"
        if config.forecast is not None:
            predicted = self.forecast_kv_usage(snapshot)
            if predicted > config.kv_usage_trigger:
                return f"forecast KV usage {predicted:.3f} > {config.kv_usage_trigger} in {config.forecast.horizon_s} s"
        return None

    def _relieved(self, snapshot: MonitorSnapshot) -> bool:
        config = self.config
        low_now = (snapshot.blocked_on_kv.long.total == 0
                   and snapshot.kv_usage.long.max <= config.kv_usage_release
                   and snapshot.queueing_delay_s.long.max <= config.queue_delay_release_s)
        if not low_now or config.forecast is None:
            return low_now
        return self.forecast_kv_usage(snapshot) <= config.kv_usage_release

    def _layers_to_lower(self, rungs: list[int]) -> list[int]:
        bottom = len(self.config.ladder) - 1
        new_layers_allowed = self.config.max_quantized_layers - sum(rung > 0 for rung in rungs)
        candidates = sorted((layer for layer, rung in enumerate(rungs) if rung < bottom),
                            key=lambda layer: (rungs[layer], self._order_position[layer]))
        chosen = []
        for layer in candidates:
            if len(chosen) == self.config.layers_per_step:
                break
            if rungs[layer] == 0:
                if new_layers_allowed == 0:
                    continue
                new_layers_allowed -= 1
            chosen.append(layer)
        return chosen

    def _layers_to_raise(self, rungs: list[int]) -> list[int]:
        candidates = sorted((layer for layer, rung in enumerate(rungs) if rung > 0),
                            key=lambda layer: (-rungs[layer], -self._order_position[layer]))
        return candidates[:self.config.layers_per_step]

    def _plan(self, rungs: list[int], layers: list[int], step: int, reason: str) -> MorphPlan | None:
        """Move ``layers`` by ``step`` rungs (+1 = less precise); ``None`` when no layer can move."""
        if not layers:
            return None
        target = list(rungs)
        for layer in layers:
            target[layer] += step
        return MorphPlan(tuple(self.config.ladder[rung] for rung in target), reason)
