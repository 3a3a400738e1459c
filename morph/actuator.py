"""Morphing Actuator: applies the controller's plans on the worker through the LayerSwapper and KVResizer.

Order of operations, which keeps weights + KV + workspace <= budget after every transition:
- *Lowering* a layer (a smaller variant) starts at once; when its swap settles, the slot tail it freed
  becomes KV blocks at once (grow).
- *Raising* a layer (a larger variant) first shrinks the KV pool to what the budget allows without the
  bytes the layer takes back, then starts. If the live blocks do not fit, the raise waits and is
  retried at every step boundary (a new plan replaces whatever still waits).

Provenance: after every boundary the actuator publishes the layers' precisions to the engine
(``LLMEngine.publish_precisions``: a version, each layer's precision, the weight bytes held), which stamps
the version on every token; ``precision_maps[version]`` is the per-layer precision of each version, so each
token's record names exactly which layers were quantized when it was produced.
"""
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from morph.kv_resizer import KVResizer
from morph.layer_swapper import SwapOutcome
from morph.plan import MorphPlan, MorphState, Precision, count_quantized
from swiftllm.server.engine import LLMEngine
from swiftllm.server.structs import KVResize


class Swapper(Protocol):
    """What the actuator drives: ``LayerSwapper`` (real weights) or ``SimulatedLayerSwapper`` (bytes, virtual time)."""
    precisions: list[Precision]        # each layer's precision now
    version: int                       # bumped whenever a layer's precision changes

    @property
    def store(self):
        """Has ``precisions`` (the variants held) and ``num_layers``."""

    @property
    def in_flight(self) -> bool: ...

    def begin(self, i: int, target: Precision) -> None: ...

    def poll(self, paced: bool = False) -> list[SwapOutcome]: ...

    def wait_for_work(self) -> None: ...

    def freed_bytes(self) -> int: ...

    def extra_bytes_for(self, i: int, target: Precision) -> int: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class TransitionEvent:
    """One layer's transition, as written to the JSONL event log. Times on the engine clock, in s."""
    time: float                     # when the transition ended
    start_time: float               # when it began
    layer: int
    source: str
    target: str
    status: str                     # done | refused | rolled_back
    bytes_copied: int
    verify_seconds: float
    copy_seconds: float
    kv_capacity_before: int         # blocks, when the transition began
    kv_capacity_after: int          # blocks, after the KV resize of the boundary at which it ended
    kv_blocks_moved: int            # live KV blocks moved by the resizes of this transition (a shrink before a raise)
    kv_resize_seconds: float        # engine-clock time of those resizes (the room made before it, the credit after)
    num_quantized_layers: int       # after the transition
    precision_version: int
    error: str | None


class MorphingActuator:
    def __init__(self, engine: LLMEngine, swapper: Swapper, resizer: KVResizer,
                 on_event: Callable[[TransitionEvent], None] = lambda event: None):
        """``engine``: the ``LLMEngine`` to which this actuator publishes the layers' precisions."""
        self.engine = engine
        self.swapper = swapper
        self.resizer = resizer
        self.on_event = on_event
        self.targets = list(swapper.precisions)
        self.last_transition_time = -math.inf
        self.precision_maps: dict[int, tuple[Precision, ...]] = {}
        self._base_weight_bytes = engine.memory.weight_bytes
        self._waiting: list[int] = []                           # layers whose transition has not begun
        self._begun: dict[int, _Begun] = {}
        self._publish()

    @property
    def state(self) -> MorphState:
        """The applied plan (what the controller reasons about): each layer's target precision."""
        return MorphState(tuple(self.targets), self.last_transition_time)

    @property
    def busy(self) -> bool:
        """Whether a swap is in flight (a new plan must wait); transitions still waiting for room may be replaced."""
        return self.swapper.in_flight

    @property
    def waiting(self) -> tuple[int, ...]:
        """Layers whose raise waits for the live KV blocks to fit in a smaller pool."""
        return tuple(self._waiting)

    def apply(self, plan: MorphPlan, now: float) -> None:
        """Start moving every layer to its precision in ``plan`` (call between two steps, when not ``busy``)."""
        if self.busy:
            raise RuntimeError("a plan is still being applied: wait until the actuator is not busy")
        missing = set(plan.layer_precisions) - set(self.swapper.store.precisions)
        if missing:
            raise ValueError(f"the plan needs {sorted(p.value for p in missing)} variants, which the layer store "
                             f"does not hold (it has {[p.value for p in self.swapper.store.precisions]})")
        transitions = plan.transitions_from(self.swapper.precisions)
        self.targets = list(plan.layer_precisions)
        self._waiting = [t.layer for t in transitions]
        self.last_transition_time = now
        self._begin_ready(now)
        self._publish()

    def poll(self, now: float, paced: bool = False) -> list[TransitionEvent]:
        """Advance swaps at a step boundary: settle finished ones, credit freed bytes to the KV pool, begin
        waiting raises that now fit. ``paced``: a batch just ran, the swaps' work takes only a share of its time.
        Returns the transitions that ended."""
        events = [self._ended(outcome, now) for outcome in self.swapper.poll(paced)]
        self._begin_ready(now)
        self._publish()
        return events

    def _begin_ready(self, now: float) -> None:
        still_waiting = []
        for layer in self._waiting:
            capacity_before = self.resizer.capacity
            room = self._make_room(layer)
            if room is not None:
                self.swapper.begin(layer, self.targets[layer])
                self._begun[layer] = _Begun(now, capacity_before, room)
            else:
                still_waiting.append(layer)
        self._waiting = still_waiting

    def _make_room(self, layer: int) -> list[KVResize] | None:
        """Shrink the KV pool so that layer's target fits in the budget: the resizes made (none when it fits
        already), or ``None`` when live blocks prevent it."""
        extra = self.swapper.extra_bytes_for(layer, self.targets[layer])
        allowed = self.resizer.capacity_for(self.swapper.freed_bytes() - extra)
        if allowed >= self.resizer.capacity:
            return []
        resize = self.resizer.resize(allowed)
        return None if resize is None else [resize]

    def _ended(self, outcome: SwapOutcome, now: float) -> TransitionEvent:
        self.targets[outcome.layer] = outcome.precision
        begun = self._begun.pop(outcome.layer)
        resizes = begun.resizes + self._credit_freed_bytes()
        event = TransitionEvent(
            time=now, start_time=begun.time, layer=outcome.layer, source=outcome.source.value,
            target=outcome.target.value, status=outcome.status, bytes_copied=outcome.bytes_copied,
            verify_seconds=outcome.verify_seconds, copy_seconds=outcome.copy_seconds,
            kv_capacity_before=begun.kv_capacity, kv_capacity_after=self.resizer.capacity,
            kv_blocks_moved=sum(r.moved_blocks for r in resizes), kv_resize_seconds=sum(r.seconds for r in resizes),
            num_quantized_layers=count_quantized(self.swapper.precisions), precision_version=self.swapper.version,
            error=outcome.error)
        self.on_event(event)
        return event

    def _credit_freed_bytes(self) -> list[KVResize]:
        """Grow the KV pool into the bytes the settled swaps freed; the resize made, if any."""
        allowed = self.resizer.capacity_for(self.swapper.freed_bytes())
        if allowed <= self.resizer.capacity:
            return []
        return [self.resizer.resize(allowed)]

    def _publish(self) -> None:
        """Tell the engine what the layers run at now and how many weight bytes they hold."""
        version = self.swapper.version
        self.precision_maps.setdefault(version, tuple(self.swapper.precisions))
        self.engine.publish_precisions(version, tuple(p.value for p in self.swapper.precisions),
                                       self._base_weight_bytes - self.swapper.freed_bytes())


@dataclass(frozen=True, slots=True)
class _Begun:
    """A transition under way: when it began, the KV capacity then, and the resizes that made room for it."""
    time: float
    kv_capacity: int
    resizes: list[KVResize]
