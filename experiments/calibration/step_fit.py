"""How a real replay's steps relate to the ops timed in isolation: fitted over every step of real replays.

A replay runs through the online engine exactly as ``experiments/run_replay.py`` runs it; each step that ran a
batch records its batch, the layers' precisions and when it started. The time from one step's start to the next
one's (``period``, when no idle tick lies between) is fitted as ``op_scale * ops + step + per_sequence * D``, with
``ops`` the sum of the isolated op times for that batch and ``D`` its sequences.
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


def fit_overhead(samples: list[StepSample], cost_model: CostModel) -> dict[str, float]:
    """op_scale, step_s and per_sequence_s; ``cost_model`` predicts the isolated ops only (scale 1, no overhead)."""
    rows, periods = [], []
    for sample in samples:
        ops = cost_model.step_time(sample.batch, sample.precisions)
        rows.append([ops, 1.0, float(len(sample.batch.chunks))])
        periods.append(sample.period)
    op_scale, step, sequence = least_squares(rows, periods)
    return {"op_scale": op_scale, "step_s": step, "per_sequence_s": sequence}
