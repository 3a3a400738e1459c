"""What an engine reports about itself at every step boundary, for ``/metrics``, ``/health`` and the dispatcher.

``EngineTelemetry`` is a step hook: it runs on the engine's loop thread and publishes one immutable ``EngineLoad``
that other threads (the HTTP server, a replica's telemetry call) read whole. Counters in it are totals since the
engine started, so a reader turns them into increments itself.
"""
import math
import time
from dataclasses import dataclass, field

from swiftllm.server.engine import LAYER_PRECISIONS, LLMEngine
from swiftllm.server.structs import StepStats


@dataclass(frozen=True, slots=True)
class EngineLoad:
    """One engine's load after its latest step. ``queueing_delay_s`` is the Serving Monitor's short-window mean of
    how long the head of the waiting queue has waited (the latest step's value when no monitor runs)."""
    kv_blocks_used: int
    kv_blocks_capacity: int
    num_running: int
    num_waiting: int
    queueing_delay_s: float
    num_quantized_layers: int
    num_preemptions_total: int = 0
    num_finished_total: int = 0          # requests the engine ended (finished, aborted or failed)
    transitions_total: dict[str, int] = field(default_factory=lambda: {"down": 0, "up": 0})
    bytes_swapped_total: int = 0

    @property
    def kv_free_blocks(self) -> int:
        return self.kv_blocks_capacity - self.kv_blocks_used

    @property
    def kv_usage(self) -> float:
        return self.kv_blocks_used / self.kv_blocks_capacity


def transition_direction(source: str, target: str) -> str:
    """``down`` towards fewer bits (fp -> int4), ``up`` back towards full precision."""
    return "down" if LAYER_PRECISIONS.index(target) > LAYER_PRECISIONS.index(source) else "up"


class EngineTelemetry:
    """Step hook publishing the engine's ``EngineLoad`` (``latest``) and when the loop last stepped (``heartbeat``,
    on ``clock``). ``runtime``: the morph runtime attached to the engine, if any; add this hook after it, so that
    its monitor has seen the step."""

    def __init__(self, engine: LLMEngine, runtime=None, clock=time.monotonic):
        self._runtime = runtime
        self._clock = clock
        self._preemptions = 0
        self._finished = 0
        self._transitions = {"down": 0, "up": 0}
        self._bytes_swapped = 0
        self._events_seen = 0
        self.latest = EngineLoad(engine.kv_blocks_used, engine.kv_capacity, 0, 0, 0.0, engine.num_quantized_layers)
        self.heartbeat = clock()

    def __call__(self, stats: StepStats) -> None:
        self._preemptions += stats.num_preemptions
        self._finished += stats.num_finished
        self._count_new_transitions()
        self.latest = EngineLoad(
            kv_blocks_used=stats.kv_blocks_used, kv_blocks_capacity=stats.kv_blocks_capacity,
            num_running=stats.num_running, num_waiting=stats.num_waiting,
            queueing_delay_s=self._queueing_delay(stats), num_quantized_layers=stats.num_quantized_layers,
            num_preemptions_total=self._preemptions, num_finished_total=self._finished,
            transitions_total=dict(self._transitions), bytes_swapped_total=self._bytes_swapped)
        self.heartbeat = self._clock()

    def _queueing_delay(self, stats: StepStats) -> float:
        monitor = getattr(self._runtime, "monitor", None)
        if monitor is None:
            return stats.oldest_waiting_time
        windowed = monitor.snapshot().queueing_delay_s.short.mean
        return stats.oldest_waiting_time if math.isnan(windowed) else windowed

    def _count_new_transitions(self) -> None:
        if self._runtime is None:
            return
        events = self._runtime.events
        for event in events[self._events_seen:]:
            self._bytes_swapped += event.bytes_copied
            if event.status == "done":
                self._transitions[transition_direction(event.source, event.target)] += 1
        self._events_seen = len(events)
