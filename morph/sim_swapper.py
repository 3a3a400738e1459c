"""The LayerSwapper of a simulated engine: the same phases and the same bookkeeping, with bytes and virtual time.

Each layer's bytes at each precision are what the real weight slot would hold (``swiftllm.sim.model_bytes``: the
real quantizers and slot layout on meta tensors). A swap goes through the real swapper's phases, each entered at a
step boundary: *verify* (the host checksum, at the hardware's checksum speed), *copy* (the layer runs at its new
precision from here; the bytes cross the host link on one copy lane, so copies queue behind each other and overlap
the decode), *settle* (the slot tail is released: the freed bytes count from here). On a CPU, as in the real
``CpuSwapCopier``, the copy checks the bytes itself: there is no verify phase, and the layer runs at its new precision
from the settle on (the lane's speed is the calibrated speed of those checked copies under decode load).
``wait_for_work`` moves the virtual clock to the next moment a phase ends, as waiting for the real background work
takes real time.
"""
import math
from collections.abc import Sequence
from dataclasses import dataclass

from morph.layer_swapper import DONE, SwapOutcome
from morph.plan import Precision
from swiftllm.server.engine import LLMEngine
from swiftllm.sim.hardware import GB
from swiftllm.sim.model_bytes import meta_layer, meta_variant, slot_bytes
from swiftllm.sim.worker import SimLayer, SimWorker


@dataclass(frozen=True, slots=True)
class SimulatedLayerStore:
    """The simulated host store: which precisions exist and the slot bytes of a layer at each (every layer alike)."""
    layer_bytes: dict[Precision, int]
    num_layers: int

    @property
    def precisions(self) -> tuple[Precision, ...]:
        return tuple(p for p in Precision if p in self.layer_bytes)

    @property
    def nbytes(self) -> int:
        """Host memory the store would hold: every layer in every precision (as ``LayerStore.nbytes``)."""
        return sum(self.layer_bytes.values()) * self.num_layers


@dataclass(slots=True)
class _SimSwap:
    layer: int
    source: Precision
    target: Precision
    verify_end: float
    copy_start: float = math.nan      # set when the copy is enqueued
    copy_end: float = math.nan


class SimulatedLayerSwapper:
    def __init__(self, engine: LLMEngine, precisions: Sequence[Precision], group_size: int):
        worker = engine.worker
        if not isinstance(worker, SimWorker):
            raise TypeError("the simulated swapper serves simulated engines (swiftllm.sim.engine.simulated_engine)")
        hardware = worker.hardware
        device_kind = "cpu" if hardware.op_table is not None else "cuda"
        layer = meta_layer(engine.model_config, engine.config.torch_dtype())
        sizes = {p: slot_bytes(meta_variant(layer, p.value, group_size, device_kind)) for p in (Precision.FP, *precisions)}
        self.store = SimulatedLayerStore(sizes, engine.model_config.num_layers)
        self.engine = engine
        self.clock = engine.clock
        self.link_bps = hardware.host_link_gbs * GB
        self.checksum_bps = hardware.checksum_gbs * GB
        self.checks_copies = device_kind == "cpu"
        self.precisions = [Precision.FP] * self.store.num_layers
        self.version = 0
        self.reserved_bytes = [sizes[Precision.FP]] * self.store.num_layers
        self._swaps: dict[int, _SimSwap] = {}
        self._lane_free_at = -math.inf
        for i in range(self.store.num_layers):
            engine.install_layer(i, SimLayer(Precision.FP.value, sizes[Precision.FP]))

    @property
    def in_flight(self) -> bool:
        return bool(self._swaps)

    def variant_bytes(self, i: int, precision: Precision) -> int:
        return self.store.layer_bytes[precision]

    def freed_bytes(self) -> int:
        full = self.store.layer_bytes[Precision.FP]
        return sum(full - held for held in self.reserved_bytes)

    def extra_bytes_for(self, i: int, target: Precision) -> int:
        return max(0, self.variant_bytes(i, target) - self.reserved_bytes[i])

    def begin(self, i: int, target: Precision) -> None:
        if i in self._swaps:
            raise RuntimeError(f"layer {i} is already being swapped")
        if target == self.precisions[i]:
            raise ValueError(f"layer {i} is already at {target.value}")
        self.reserved_bytes[i] = max(self.reserved_bytes[i], self.variant_bytes(i, target))
        swap = _SimSwap(i, self.precisions[i], target, self.clock() + self._verify_seconds(i, target))
        self._swaps[i] = swap
        if self.checks_copies:
            self._start_copy(swap, self.clock())

    def poll(self, paced: bool = False) -> list[SwapOutcome]:
        """Enqueue the copies whose verification ended and settle the copies that ended, as of now (the copy lane
        overlaps the steps: pacing does not apply)."""
        now, ended = self.clock(), []
        for swap in list(self._swaps.values()):
            if math.isnan(swap.copy_start) and now >= swap.verify_end:
                self._start_copy(swap, now)
            if now >= swap.copy_end:
                ended.append(self._settle(swap))
        return ended

    def wait_for_work(self) -> None:
        """Move the clock to the end of the next phase of a swap in flight."""
        pending = [s.verify_end if math.isnan(s.copy_start) else s.copy_end for s in self._swaps.values()]
        if pending:
            self.clock.advance_to(min(pending))

    def close(self) -> None:
        if self._swaps:
            raise RuntimeError(f"layers {sorted(self._swaps)} are still being swapped")

    def _start_copy(self, swap: _SimSwap, now: float) -> None:
        swap.copy_start = max(now, self._lane_free_at)
        swap.copy_end = swap.copy_start + self.variant_bytes(swap.layer, swap.target) / self.link_bps
        self._lane_free_at = swap.copy_end
        if not self.checks_copies:
            self._run_at(swap.layer, swap.target)

    def _settle(self, swap: _SimSwap) -> SwapOutcome:
        del self._swaps[swap.layer]
        if self.checks_copies:
            self._run_at(swap.layer, swap.target)
        self.reserved_bytes[swap.layer] = self.variant_bytes(swap.layer, swap.target)
        nbytes = self.variant_bytes(swap.layer, swap.target)
        return SwapOutcome(swap.layer, swap.source, swap.target, DONE, nbytes,
                           self._verify_seconds(swap.layer, swap.target), swap.copy_end - swap.copy_start)

    def _verify_seconds(self, i: int, target: Precision) -> float:
        """The verify phase before the copy: none where the copy checks the bytes itself."""
        return 0.0 if self.checks_copies else self.variant_bytes(i, target) / self.checksum_bps

    def _run_at(self, i: int, precision: Precision) -> None:
        self.engine.install_layer(i, SimLayer(precision.value, self.variant_bytes(i, precision)))
        self.precisions[i] = precision
        self.version += 1
