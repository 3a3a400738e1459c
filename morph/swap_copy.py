"""How a swap's bytes move off the step loop, per device, and what the layer runs on meanwhile.

A swap copies a host-store variant into the layer's weight slot. While the copy runs, the slot must
not be read as the layer's weights, so the layer runs on an *interim* form of a variant:

- CPU (``cpu_swap_copy.CpuSwapCopier``): the work runs in slices on the step loop, within a share of each
  step, and checks the bytes against the store's checksums as it copies them (``checks_copies``); the
  interim layer is a host-store variant itself: the one the layer ran before, so an unchecked variant never
  runs.
- CUDA: the copy is enqueued on a dedicated stream, behind the work already on the compute stream
  (which may still read the slot, and holds the zero-fill of chunks committed for a larger variant),
  and an event is recorded. The interim layer is the slot views with
  its first GEMM wrapped so that the compute stream waits for the event right there: only that layer
  waits, and only if the copy has not finished. Its first norm, read before that GEMM, is a small
  device copy from the host store.

Both return a ``Ticket`` the swapper polls at step boundaries. A job is a callable returning an iterator of
slices (``verify_slices``, ``copy_slices``); CUDA verifies a variant before copying it, in a job run whole on a
background thread.
"""
import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

import torch

from morph.layer_store import Checksums
from swiftllm.worker.layers.linear import Linear
from swiftllm.worker.weight import LayerWeights
from swiftllm.worker.weight_slots import WeightSlots


logger = logging.getLogger(__name__)


class Ticket(Protocol):
    def done(self) -> bool:
        """Whether the job finished (successfully or not)."""

    def error(self) -> BaseException | None:
        """The job's exception once ``done()``; ``None`` on success."""

    def wait(self) -> None:
        """Block until ``done()``."""

    def seconds(self) -> float:
        """How long the job itself ran, once ``done()`` without error."""


class FutureTicket:
    """A job on the background thread; its result is the job's own duration."""

    def __init__(self, future: Future):
        self._future = future

    def done(self) -> bool:
        return self._future.done()

    def error(self) -> BaseException | None:
        return self._future.exception()

    def wait(self) -> None:
        self._future.exception()

    def seconds(self) -> float:
        return self._future.result()


class EventTicket:
    """Copies enqueued on a CUDA stream between the events ``start`` and ``event``."""

    def __init__(self, start: "torch.cuda.Event", event: "torch.cuda.Event"):
        self.start = start
        self.event = event

    def done(self) -> bool:
        return self.event.query()

    def error(self) -> BaseException | None:
        return None

    def wait(self) -> None:
        self.event.synchronize()

    def seconds(self) -> float:
        return self.start.elapsed_time(self.event) / 1e3


Job = Callable[[], Iterator[int]]


class SwapCopier(Protocol):
    """Moves variants into a model's weight slots; the swapper calls these between two steps."""
    slots: WeightSlots
    checks_copies: bool     # ``copy`` checks the bytes against ``checksums``: no verification before it

    def run(self, job: Job) -> Ticket:
        """Start ``job`` (a verification)."""

    def copy(self, i: int, variant: LayerWeights, checksums: Checksums) -> Ticket:
        """Start copying ``variant`` into slot ``i``; may raise if the copy cannot even start. When
        ``checks_copies``, the ticket ends with ``CorruptVariantError`` if the bytes do not match ``checksums``."""

    def interim(self, i: int, variant: LayerWeights, ticket: Ticket) -> LayerWeights:
        """What layer ``i`` runs on at ``variant``'s precision until ``ticket`` is done."""

    def advance(self, paced: bool) -> None:
        """Do this step boundary's share of the work (``paced``: a step just ran; else all of it)."""

    def finish(self) -> None:
        """Do all the work started so far."""

    def claim_slot(self, i: int) -> None:
        """Before slot ``i`` is committed or written: end any work still pending on it."""

    def release_tail(self, i: int, keep_bytes: int) -> None:
        """Give slot ``i``'s bytes past ``keep_bytes`` back to the OS / device."""

    def close(self) -> None: ...


class CudaSwapCopier:
    """Copies on a dedicated CUDA stream; verifications on a background thread. ``cuda``: the ``torch.cuda``
    namespace (streams, events, the current stream); a test passes a recorder."""

    checks_copies = False

    def __init__(self, slots: WeightSlots, cuda=torch.cuda):
        self.slots = slots
        self.cuda = cuda
        self.stream = cuda.Stream(device=slots.arena.device)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="morph-swap",
                                            initializer=yield_cpu_to_compute)

    def run(self, job: Job) -> Ticket:
        """Run ``job`` whole on the background thread."""
        return FutureTicket(self._executor.submit(_timed, lambda: _exhaust(job())))

    def advance(self, paced: bool) -> None:
        """The stream and the thread make progress on their own."""

    def finish(self) -> None:
        """Tickets are waited for one by one."""

    def claim_slot(self, i: int) -> None:
        """Releases run on the step loop: nothing is ever pending."""

    def release_tail(self, i: int, keep_bytes: int) -> None:
        self.slots.release_tail(i, keep_bytes)

    def close(self) -> None:
        self._executor.shutdown(wait=True)

    def copy(self, i: int, variant: LayerWeights, checksums: Checksums) -> Ticket:
        """Enqueue the copy behind the compute stream's pending work (call it from the step loop, whose current
        stream is the compute stream: it is read *before* the copy stream becomes the current one). ``variant``
        was verified against ``checksums`` before."""
        compute = self.cuda.current_stream(self.slots.arena.device)
        start, end = self.cuda.Event(enable_timing=True), self.cuda.Event(enable_timing=True)
        with self.cuda.stream(self.stream):
            self.stream.wait_stream(compute)
            start.record(self.stream)
            self.slots.copy_in(i, variant)
            end.record(self.stream)
        return EventTicket(start, end)

    def interim(self, i: int, variant: LayerWeights, ticket: EventTicket) -> LayerWeights:
        views = self.slots.views(i, variant)
        return dataclasses.replace(
            views, attn_norm=variant.attn_norm.to(views.ffn_norm.device, non_blocking=True),
            qkv_proj=EventAwaitingLinear(views.qkv_proj, ticket.event))


class EventAwaitingLinear:
    """``inner`` whose call first makes the compute stream wait for a swap copy (CUDA interim layers)."""
    __slots__ = ("inner", "event")

    def __init__(self, inner: Linear, event: "torch.cuda.Event"):
        self.inner = inner
        self.event = event

    @property
    def in_features(self) -> int:
        return self.inner.in_features

    @property
    def out_features(self) -> int:
        return self.inner.out_features

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        torch.cuda.current_stream(x.device).wait_event(self.event)
        return self.inner(x)

    def tensors(self) -> dict[str, torch.Tensor]:
        return self.inner.tensors()

    def with_tensors(self, tensors: dict[str, torch.Tensor]) -> Linear:
        return self.inner.with_tensors(tensors)


def yield_cpu_to_compute() -> None:
    """Lowest CPU priority for the calling (background) thread: it runs when a core is free, so a swap costs the
    decode little, but a swap waits longer while both cores compute. Where the OS refuses, it keeps its priority."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except OSError as refusal:
        logger.warning("swap thread keeps its CPU priority: %s", refusal)


def _timed(job: Callable[[], None]) -> float:
    start = time.perf_counter()
    job()
    return time.perf_counter() - start


def _exhaust(slices: Iterator[int]) -> None:
    for _ in slices:
        pass
