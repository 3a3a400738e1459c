"""The simulator's worker: the worker interface (``swiftllm.worker.interface``) computing nothing.

``execute`` predicts how long the batch would take with every decoder layer at its current precision and moves
the virtual clock on by that much; it returns a token per sampling chunk that is never an end-of-sequence token, so
a request ends by its length (or a stop the caller set), as a trace replay asks. Moving live KV blocks costs the
bytes read and written at the device's bandwidth. Layers are installed as ``SimLayer``s: their precision is what
the cost model needs.
"""
from dataclasses import dataclass

from swiftllm.sim.clock import VirtualClock
from swiftllm.sim.cost_model import CostModel
from swiftllm.sim.hardware import GB, HardwareSpec
from swiftllm.worker.batch import WorkerBatch
from swiftllm.worker.weight import ModelWeights


@dataclass(frozen=True, slots=True)
class SimLayer:
    """A simulated decoder layer: its precision and the slot bytes it occupies."""
    precision: str
    nbytes: int


class SimWorker:
    def __init__(self, cost_model: CostModel, hardware: HardwareSpec, clock: VirtualClock, weights: ModelWeights,
                 max_kv_blocks: int, kv_block_bytes: int, output_token: int):
        self.cost_model = cost_model
        self.hardware = hardware
        self.clock = clock
        self.weights = weights              # meta tensors: shapes and dtypes only
        self.max_kv_blocks = max_kv_blocks
        self.kv_block_bytes = kv_block_bytes
        self.output_token = output_token
        self.layer_precisions = ["fp"] * len(weights.layers)
        self.busy_seconds = 0.0             # predicted time of every batch so far

    def execute(self, batch: WorkerBatch) -> list[int]:
        seconds = self.cost_model.step_time(batch, self.layer_precisions)
        self.busy_seconds += seconds
        self.clock.advance(seconds)
        return [self.output_token] * len(batch.sampled)

    def release(self, seq_id: str) -> None:
        """No per-sequence state is kept."""

    def resize_kv_cache(self, capacity: int, moves: list[tuple[int, int]]) -> None:
        if not 1 <= capacity <= self.max_kv_blocks:
            raise ValueError(f"KV capacity must lie in [1, max_blocks={self.max_kv_blocks}], got {capacity}")
        moved_bytes = 2 * len(moves) * self.kv_block_bytes
        self.clock.advance(moved_bytes / (self.hardware.memory_bandwidth_gbs * GB * self.hardware.memory_efficiency))

    def install_layer(self, i: int, layer: SimLayer) -> None:
        self.layer_precisions[i] = layer.precision
