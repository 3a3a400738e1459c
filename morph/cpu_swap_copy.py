"""How a swap's bytes move on a CPU: in slices on the step loop, between two steps, within a share of each step.

The decode takes both cores. A background thread copying a layer takes a core from it, and the decode's threads then
wait for each other at every barrier (a swap in flight stalled the decode by up to 20 %); a thread at the lowest
priority only gets the cores' idle moments, of which a decode has none (a 4-layer lowering took half a second). So
the copy runs on the step loop itself, on the intra-op threads the step left idle, in slices (a copy of at most
``COPY_SLICE_BYTES``, small tensors together, checksummed as it is copied: a variant is read once, not verified and
then copied), until the boundary's budget is spent: ``step_share`` of the wall time since the previous
boundary (the step that just ran), at least ``MIN_BOUNDARY_SECONDS`` and one slice. A boundary after a step that ran
nothing, and ``finish`` (the runtime waiting for its swaps between steps), run everything.

Returning a slot's tail to the OS (an madvise of the freed pages: about a millisecond for 12 MB, and a TLB shootdown
that interrupts every core) is left to a background thread at the lowest priority. The freed bytes count from the
moment the swap settles; before anything touches that slot again, a release not yet made is cancelled (the bytes
stay committed, as the next variant needs them) or waited for.
"""
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from morph.layer_store import Checksums, CorruptVariantError
from morph.swap_copy import SwapCopier, Ticket, yield_cpu_to_compute
from swiftllm.worker.weight import LayerWeights
from swiftllm.worker.weight_slots import WeightSlots

DEFAULT_STEP_SHARE = 0.015     # of each step's time: the decode's stall stays under 2 %
MIN_BOUNDARY_SECONDS = 2e-4    # whatever the step: short steps (a tiny model) still move a swap on


class SlicedTicket:
    """A job split into slices (it returns an iterator yielding after each); run by ``step`` calls on the step loop.
    Whatever the job raises, when started or in a slice, ends the ticket as its error."""

    def __init__(self, job: Callable[[], Iterator[int]]):
        self._job = job
        self._slices: Iterator[int] | None = None
        self._done = False
        self._error: BaseException | None = None
        self._seconds = 0.0

    def step(self) -> None:
        """Run one slice (the ticket ends when the iterator does, or raises)."""
        start = time.perf_counter()
        try:
            if self._slices is None:
                self._slices = self._job()
            next(self._slices)
        except StopIteration:
            self._done = True
        except Exception as failure:
            self._error, self._done = failure, True
        self._seconds += time.perf_counter() - start

    def done(self) -> bool:
        return self._done

    def error(self) -> BaseException | None:
        return self._error

    def wait(self) -> None:
        while not self._done:
            self.step()

    def seconds(self) -> float:
        return self._seconds


class CpuSwapCopier(SwapCopier):
    checks_copies = True

    def __init__(self, slots: WeightSlots, step_share: float = DEFAULT_STEP_SHARE):
        if not 0 < step_share <= 1:
            raise ValueError(f"the swap's share of each step must lie in (0, 1], got {step_share}")
        self.slots = slots
        self.step_share = step_share
        self._queue: deque[SlicedTicket] = deque()
        self._last_boundary = time.perf_counter()
        self._releases = ThreadPoolExecutor(max_workers=1, thread_name_prefix="morph-release",
                                            initializer=yield_cpu_to_compute)
        self._pending_releases: dict[int, Future] = {}

    def run(self, job: Callable[[], Iterator[int]]) -> Ticket:
        ticket = SlicedTicket(job)
        self._queue.append(ticket)
        return ticket

    def copy(self, i: int, variant: LayerWeights, checksums: Checksums) -> Ticket:
        """Copy ``variant`` into slot ``i`` in slices; the ticket ends with ``CorruptVariantError`` if the bytes copied
        do not match ``checksums``."""
        return self.run(lambda: self._checked_copy(i, variant, checksums))

    def _checked_copy(self, i: int, variant: LayerWeights, checksums: Checksums) -> Iterator[int]:
        copied: dict[str, list[int]] = {name: [] for name in checksums}
        for piece in self.slots.copy_slices(i, variant):
            for name, chunks in piece.checksums.items():
                copied[name] += chunks
            yield piece.nbytes
        for name, expected in checksums.items():
            if tuple(copied[name]) != expected:
                raise CorruptVariantError(f"layer {i} variant fails its checksum in {name} (memory corrupted); "
                                          "refused")

    def interim(self, i: int, variant: LayerWeights, ticket: Ticket) -> LayerWeights:
        """The host variant itself: host memory is what the CPU computes from anyway."""
        return variant

    def advance(self, paced: bool) -> None:
        """Run queued slices, oldest job first: when ``paced``, for ``step_share`` of the time since the previous
        boundary (at least ``MIN_BOUNDARY_SECONDS`` and one slice), else all of them."""
        start = time.perf_counter()
        budget = max(self.step_share * (start - self._last_boundary), MIN_BOUNDARY_SECONDS) if paced else None
        while self._queue:
            ticket = self._queue[0]
            ticket.step()
            if ticket.done():
                self._queue.popleft()
            if budget is not None and time.perf_counter() - start >= budget:
                break
        self._last_boundary = time.perf_counter()

    def finish(self) -> None:
        self.advance(paced=False)
        for release in list(self._pending_releases.values()):
            release.result()

    def claim_slot(self, i: int) -> None:
        release = self._pending_releases.pop(i, None)
        if release is not None and not release.cancel():
            release.result()

    def release_tail(self, i: int, keep_bytes: int) -> None:
        self.claim_slot(i)
        self._pending_releases[i] = self._releases.submit(self.slots.release_tail, i, keep_bytes)

    def close(self) -> None:
        self.finish()
        self._releases.shutdown(wait=True)
