"""FCFS continuous batching with chunked prefill and preemption by recompute."""
from collections import deque
from dataclasses import dataclass, field

from swiftllm.server.block_manager import BlockManager
from swiftllm.server.structs import Request, RequestStatus


@dataclass(slots=True)
class SchedulerConfig:
    max_num_seqs: int = 64
    max_num_batched_tokens: int = 2048

    def __post_init__(self):
        if self.max_num_seqs < 1 or self.max_num_batched_tokens < 1:
            raise ValueError("max_num_seqs and max_num_batched_tokens must be >= 1")


@dataclass(slots=True)
class ScheduledBatch:
    """``chunks``: (request, number of its next tokens to compute); preempted requests went back to waiting."""
    chunks: list[tuple[Request, int]] = field(default_factory=list)
    preempted: list[Request] = field(default_factory=list)
    blocked_on_kv: bool = False

    @property
    def num_tokens(self) -> int:
        return sum(n for _, n in self.chunks)


class Scheduler:
    def __init__(self, config: SchedulerConfig, block_manager: BlockManager):
        self.config = config
        self.block_manager = block_manager
        self.waiting: deque[Request] = deque()
        self.running: list[Request] = []

    def add(self, req: Request) -> None:
        self.waiting.append(req)

    def has_unfinished(self) -> bool:
        return bool(self.waiting or self.running)

    def schedule(self) -> ScheduledBatch:
        batch = ScheduledBatch()
        budget = self._schedule_running(batch, self.config.max_num_batched_tokens)
        self._admit_waiting(batch, budget)
        return batch

    def finish(self, req: Request) -> None:
        self.running.remove(req)
        self.block_manager.free(req)

    def abort(self, request_id: str) -> Request | None:
        for queue in (self.waiting, self.running):
            for req in queue:
                if req.request_id == request_id:
                    queue.remove(req)
                    self.block_manager.free(req)
                    return req
        return None

    def _schedule_running(self, batch: ScheduledBatch, budget: int) -> int:
        """Give every running request its next chunk, preempting the latest arrivals when blocks run out."""
        queue = deque(self.running)
        kept = []
        while queue:
            req = queue.popleft()
            num_new = min(req.num_uncomputed, budget)
            if num_new == 0:
                kept.append(req)
                continue
            while not self.block_manager.can_allocate(req, req.num_computed + num_new, keep_watermark=False):
                victim = queue.pop() if queue else req
                self._preempt(victim, batch)
                if victim is req:
                    break
            else:
                self.block_manager.allocate(req, req.num_computed + num_new)
                batch.chunks.append((req, num_new))
                kept.append(req)
                budget -= num_new
        self.running = kept
        return budget

    def _admit_waiting(self, batch: ScheduledBatch, budget: int) -> None:
        """Admit from the queue head while blocks allow, keeping the watermark free for the running requests' growth.
        With nothing running no one needs that reserve: the head may take the whole pool (a request the engine
        accepted never needs more than the pool, so the head of an idle engine is always admitted)."""
        while self.waiting and budget > 0 and len(self.running) < self.config.max_num_seqs:
            req = self.waiting[0]
            num_new = min(req.num_uncomputed, budget)
            if not self.block_manager.can_allocate(req, num_new, keep_watermark=bool(self.running)):
                batch.blocked_on_kv = True
                return
            self.waiting.popleft()
            self.block_manager.allocate(req, num_new)
            req.status = RequestStatus.RUNNING
            self.running.append(req)
            batch.chunks.append((req, num_new))
            budget -= num_new

    def _preempt(self, req: Request, batch: ScheduledBatch) -> None:
        """Recompute preemption: drop the request's KV; it re-enters the queue head with its tokens so far."""
        self.block_manager.free(req)
        req.num_computed = 0
        req.num_preemptions += 1
        req.status = RequestStatus.WAITING
        self.waiting.appendleft(req)
        batch.preempted.append(req)
        batch.blocked_on_kv = True
