"""How a real replay's steps relate to the ops timed in isolation: fitted over every step of real replays.

A replay runs through the online engine exactly as ``experiments/run_replay.py`` runs it; each step that ran a
batch records its batch, the layers' precisions and when it started. The time from one step's start to the next
one's (``period``, when no idle tick lies between) is fitted as
``sum_p layer_scale[p] * layers_p + other_ops + step + per_sequence * D``, with ``layers_p`` the isolated times of
the batch's decoder layers at precision ``p`` (outside attention), ``other_ops`` those of its attention and LM head,
and ``D`` its sequences. A layer's isolated timing reads its weights from a cache warmed by the repeats,
and how much that flatters it depends on the weights' size, hence a factor per precision; attention and the LM head
stream more than the cache holds and keep their isolated times (a free factor for them trades off against the
per-sequence overhead, which grows with the batch as they do).
"""
import asyncio
from dataclasses import dataclass

from experiments.calibration.timing import least_squares
from experiments.replay.driver import replay
from experiments.workload import WorkloadRequest
from swiftllm.server.async_engine import AsyncLLMEngine
from swiftllm.server.engine import LLMEngine
from swiftllm.server.structs import StepStats
from swiftllm.sim.cost_model import CostModel
from swiftllm.worker.batch import WorkerBatch


@dataclass(frozen=True, slots=True)
class StepSample:
    period: float                    # seconds from this step's batch to the next step's
    batch: WorkerBatch
    precisions: tuple[str, ...]


def record_steps(engine: LLMEngine, workload: list[WorkloadRequest]) -> list[StepSample]:
    """Replay ``workload`` online, as a real replay runs; a sample for every step that ran a batch and was followed
    directly (no idle tick between) by another such step. The worker's ``execute`` is wrapped for the replay."""
    calls: list[tuple[float, int, WorkerBatch, tuple[str, ...]]] = []     # (clock, steps before, batch, precisions)
    num_steps = [0]
    execute = engine.worker.execute

    def recorded(batch: WorkerBatch) -> list[int]:
        calls.append((engine.clock(), num_steps[0], batch, engine.layer_precisions))
        return execute(batch)

    def count(stats: StepStats) -> None:
        num_steps[0] += 1
    engine.worker.execute = recorded
    engine.add_step_hook(count)
    online = AsyncLLMEngine(engine)
    online.start()
    try:
        asyncio.run(replay(online, workload, show_progress=False))
    finally:
        online.shutdown()
        engine.remove_step_hook(count)
        del engine.worker.execute
    return [StepSample(t1 - t0, batch, precisions)
            for (t0, n0, batch, precisions), (t1, n1, _, _) in zip(calls, calls[1:]) if n1 == n0 + 1]


def fit_overhead(samples: list[StepSample], cost_model: CostModel) -> dict:
    """layer_scale (for each precision the samples ran), step_s and per_sequence_s; ``cost_model`` predicts the
    isolated ops only (layer scales 1, no overhead). A coefficient the fit finds negative is 0 (``least_squares``)."""
    precisions = sorted({p for sample in samples for p in sample.precisions})
    if len(samples) < len(precisions) + 2:
        raise ValueError(f"fitting {len(precisions) + 2} coefficients needs at least as many step samples, got "
                         f"{len(samples)}")
    rows, unexplained = [], []
    for sample in samples:
        layers = layer_seconds_by_precision(sample, cost_model)
        other = cost_model.step_time(sample.batch, sample.precisions) - sum(layers.values())
        rows.append([layers.get(p, 0.0) for p in precisions] + [1.0, float(len(sample.batch.chunks))])
        unexplained.append(sample.period - other)
    *layer_scales, step, sequence = least_squares(rows, unexplained)
    return {"layer_scale": dict(zip(precisions, layer_scales)), "step_s": step, "per_sequence_s": sequence}


def layer_seconds_by_precision(sample: StepSample, cost_model: CostModel) -> dict[str, float]:
    """Isolated seconds of the sample's decoder layers outside attention, summed per precision."""
    num_tokens, seconds = sample.batch.num_tokens, {}
    for precision in sample.precisions:
        seconds[precision] = seconds.get(precision, 0.0) + cost_model.ops.layer(num_tokens, precision)
    return seconds
