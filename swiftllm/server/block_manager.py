"""Paged KV-cache block allocation (control plane). Blocks are handed out lowest id first, so a
later capacity shrink has the fewest live blocks to move.

The capacity is elastic (``grow`` / ``shrink``): block ids are always ``0 .. capacity - 1``. A shrink
moves the live blocks at or above the new capacity into free blocks below it and rewrites their
owners' block tables; the caller copies the KV data of the returned moves before the next step."""
import heapq

from swiftllm.server.structs import Request


class BlockManager:
    def __init__(self, num_blocks: int, block_size: int, watermark: float = 0.01):
        if num_blocks < 1 or block_size < 1:
            raise ValueError(f"need num_blocks >= 1 and block_size >= 1, got {num_blocks}, {block_size}")
        self.block_size = block_size
        self.watermark = watermark
        self.capacity = num_blocks
        self.free_blocks = list(range(num_blocks))   # a min-heap
        self.owner: dict[int, Request] = {}          # allocated block id -> request

    @property
    def num_free(self) -> int:
        return len(self.free_blocks)

    @property
    def num_used(self) -> int:
        return len(self.owner)

    @property
    def watermark_blocks(self) -> int:
        return int(self.watermark * self.capacity)

    def blocks_for(self, num_tokens: int) -> int:
        return -(-num_tokens // self.block_size)

    def num_missing(self, req: Request, num_tokens: int) -> int:
        """Blocks ``req`` still needs so that its first ``num_tokens`` tokens have a slot."""
        return max(0, self.blocks_for(num_tokens) - len(req.block_table))

    def can_allocate(self, req: Request, num_tokens: int, keep_watermark: bool) -> bool:
        reserve = self.watermark_blocks if keep_watermark else 0
        return self.num_free - self.num_missing(req, num_tokens) >= reserve

    def allocate(self, req: Request, num_tokens: int) -> None:
        missing = self.num_missing(req, num_tokens)
        if missing > self.num_free:
            raise RuntimeError(f"request {req.request_id} needs {missing} blocks, only {self.num_free} free")
        for _ in range(missing):
            block = heapq.heappop(self.free_blocks)
            self.owner[block] = req
            req.block_table.append(block)

    def free(self, req: Request) -> None:
        for block in req.block_table:
            del self.owner[block]
            heapq.heappush(self.free_blocks, block)
        req.block_table = []

    def grow(self, new_capacity: int) -> None:
        """Add the free blocks ``capacity .. new_capacity - 1``."""
        if new_capacity < self.capacity:
            raise ValueError(f"grow needs new_capacity >= capacity ({self.capacity}), got {new_capacity}")
        for block in range(self.capacity, new_capacity):
            heapq.heappush(self.free_blocks, block)
        self.capacity = new_capacity

    def shrink(self, new_capacity: int) -> list[tuple[int, int]]:
        """Drop the blocks ``new_capacity .. capacity - 1``; returns the (old, new) id of every live block moved.

        Live blocks above the new capacity move into the lowest free blocks below it, and their owners'
        block tables are remapped in place, so every table stays valid. Raises ``ValueError`` when the
        live blocks do not fit in ``new_capacity`` (nothing is changed then)."""
        if not 1 <= new_capacity <= self.capacity:
            raise ValueError(f"shrink needs 1 <= new_capacity <= capacity ({self.capacity}), got {new_capacity}")
        if self.num_used > new_capacity:
            raise ValueError(f"cannot shrink to {new_capacity} blocks: {self.num_used} blocks are in use")
        self.free_blocks = [block for block in self.free_blocks if block < new_capacity]
        heapq.heapify(self.free_blocks)
        moves = [(block, heapq.heappop(self.free_blocks)) for block in sorted(self.owner) if block >= new_capacity]
        for old, new in moves:
            self._move(old, new)
        self.capacity = new_capacity
        return moves

    def _move(self, old: int, new: int) -> None:
        req = self.owner.pop(old)
        self.owner[new] = req
        req.block_table[req.block_table.index(old)] = new

    def check_invariants(self, live: list[Request]) -> None:
        """allocated + free == capacity; every live block table points at blocks that request owns."""
        assert self.num_used + self.num_free == self.capacity, (self.num_used, self.num_free, self.capacity)
        assert len(set(self.free_blocks)) == self.num_free and not set(self.free_blocks) & self.owner.keys()
        assert all(0 <= b < self.capacity for b in self.free_blocks) and all(0 <= b < self.capacity for b in self.owner)
        owned = 0
        for req in live:
            assert all(self.owner.get(b) is req for b in req.block_table), f"request {req.request_id} has foreign blocks"
            assert len(req.block_table) >= self.blocks_for(req.num_computed), f"request {req.request_id} lacks blocks"
            owned += len(req.block_table)
        assert owned == self.num_used, f"{self.num_used - owned} blocks are owned by no live request"
