"""How a run used its KV cache, from its per-step statistics: utilization, and the blocks used beyond the capacity
full precision would have had (the memory morphing or static quantization freed and the run actually filled).

A step reports the state at its end, which holds until the next step ends: time averages weight each step by that
interval (the last step by nothing). With a single step, or all steps at one time, the plain mean is used.
"""
from collections.abc import Sequence

import numpy as np

from swiftllm.server.structs import StepStats


def kv_usage_metrics(steps: Sequence[StepStats], fp_capacity_blocks: int) -> dict[str, float]:
    if not steps:
        raise ValueError("kv_usage_metrics needs at least one step")
    times = np.array([s.time for s in steps], dtype=np.float64)                      # [T]
    used = np.array([s.kv_blocks_used for s in steps], dtype=np.float64)              # [T]
    capacity = np.array([s.kv_blocks_capacity for s in steps], dtype=np.float64)      # [T]
    held_s = np.append(np.diff(times), 0.0)                                           # [T]
    weights = held_s if held_s.sum() > 0 else np.ones_like(held_s)
    beyond = np.maximum(used - fp_capacity_blocks, 0.0)                               # [T]
    return {
        "mean_kv_utilization": float(np.average(used / capacity, weights=weights)),
        "peak_kv_blocks_used": int(used.max()),
        "peak_kv_blocks_beyond_fp": int(beyond.max()),
        "kv_block_seconds_beyond_fp": float((beyond * held_s).sum()),
        "share_time_beyond_fp_kv": float(weights[beyond > 0].sum() / weights.sum()),
    }
