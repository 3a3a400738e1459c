"""Builders of ``StepStats`` shared by the morph policy tests."""
from swiftllm.server.structs import StepStats

_DEFAULTS = dict(
    duration=0.1, num_running=0, num_waiting=0, num_prefill_tokens=0, num_decode_tokens=0, kv_blocks_used=0,
    kv_blocks_capacity=1000, oldest_waiting_time=0.0, blocked_on_kv=False, num_preemptions=0,
    num_quantized_layers=0,
)


def step_stats(time: float, **fields) -> StepStats:
    """A step ending at ``time`` with quiet defaults; ``fields`` override any ``StepStats`` field."""
    return StepStats(time=time, **(_DEFAULTS | fields))


def step_time(index: int, dt: float = 0.1) -> float:
    """End time of step ``index`` (1-based) without floating-point drift."""
    return round(index * dt, 9)
