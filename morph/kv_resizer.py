"""KVResizer: turns the bytes freed by quantized layers into KV blocks, and gives them back.

The KV capacity tracks the freed bytes: ``capacity = base_capacity + freed_bytes // block_bytes``,
where ``base_capacity`` is the pool's full-precision size. So weights + KV + workspace never exceed
what they were at full precision, and hence never exceed the budget.

Growing commits new blocks at once. Shrinking first moves the live blocks above the new capacity
into free blocks below it (``BlockManager.shrink`` remaps their block tables, the KV data is copied
block by block), then releases the dropped range; it is refused, changing nothing, when the live
blocks do not fit. Resizes run between two steps, so no forward pass sees a half-moved block.
"""
import logging
import time
from dataclasses import dataclass

from swiftllm.server.block_manager import BlockManager
from swiftllm.server.memory import MemoryPlan
from swiftllm.worker.kv_cache import PagedKVCache

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Resize:
    before: int             # capacity in blocks
    after: int
    moved_blocks: int
    seconds: float          # wall time of the resize


class KVResizer:
    def __init__(self, block_manager: BlockManager, kv_cache: PagedKVCache, memory: MemoryPlan):
        if kv_cache.num_blocks != block_manager.capacity:
            raise ValueError(f"the KV pool has {kv_cache.num_blocks} blocks but the block manager "
                             f"{block_manager.capacity}")
        self.block_manager = block_manager
        self.kv_cache = kv_cache
        self.memory = memory
        self.base_capacity = block_manager.capacity

    @property
    def capacity(self) -> int:
        return self.block_manager.capacity

    @property
    def block_bytes(self) -> int:
        return self.memory.block_bytes

    def capacity_for(self, freed_bytes: int) -> int:
        """The capacity the budget allows when ``freed_bytes`` of weights are released."""
        return min(self.base_capacity + freed_bytes // self.block_bytes, self.kv_cache.max_blocks)

    def can_resize(self, new_capacity: int) -> bool:
        """Whether the live blocks fit in ``new_capacity`` blocks."""
        return self.block_manager.num_used <= new_capacity

    def resize(self, new_capacity: int) -> Resize | None:
        """Grow or shrink to ``new_capacity`` blocks; ``None`` (nothing changed) when live blocks do not fit."""
        before = self.capacity
        if not self.can_resize(new_capacity):
            return None
        start = time.perf_counter()
        moved = []
        if new_capacity > before:
            self.kv_cache.resize(new_capacity)
            self.block_manager.grow(new_capacity)
        elif new_capacity < before:
            moved = self.block_manager.shrink(new_capacity)
            self.kv_cache.move_blocks(moved)
            self.kv_cache.resize(new_capacity)
        self.memory.num_kv_blocks = new_capacity
        resize = Resize(before, new_capacity, len(moved), time.perf_counter() - start)
        logger.debug("KV capacity %d -> %d blocks (%d live blocks moved) in %.2f ms", before, new_capacity,
                     len(moved), resize.seconds * 1e3)
        return resize
