"""The paged KV pool (data plane): per-layer K and V blocks in an elastic ``MemoryArena``.

The arena reserves address space for ``max_blocks`` blocks once; only the first ``capacity`` blocks
may hold memory. Each (layer, K|V) pair owns one page-aligned region of the arena, so growing makes
the new blocks of every region usable (``make_usable``) and shrinking releases the dropped blocks'
whole pages to the OS (CPU) or unmaps them (CUDA) without moving any kept block. Block ``b`` of
every layer keeps its address for the pool's whole life, so block ids stay valid across resizes.
"""
import torch

from swiftllm.model_config import LlamaModelConfig
from swiftllm.worker.memory_arena import MemoryArena

# Regions start on 2 MiB boundaries: a whole number of CPU pages and of CUDA VMM granules, so releasing
# one region's tail never touches its neighbour.
REGION_ALIGNMENT = 2 << 20


def round_up(value: int, alignment: int) -> int:
    return -(-value // alignment) * alignment


def make_usable(arena: MemoryArena, offset: int, nbytes: int) -> None:
    """Make ``[offset, offset + nbytes)`` of ``arena`` safe to touch.

    CUDA needs its chunks mapped before any access. On CPU the first write faults a released page
    back in, so nothing is done here: pre-faulting would zero the pages on the step loop (about 5 ms
    for one SmolLM2 layer's worth of KV blocks), while lazily the cost lands on whoever writes first
    (the KV store, spread over the steps that fill the new blocks; the background swap copy for slots).
    """
    if arena.device.type == "cuda":
        arena.commit(offset, nbytes)


class PagedKVCache:
    """k[i], v[i]: layer i's cache, [capacity, block_size, num_kv_heads, head_dim] (views into the arena)."""

    def __init__(self, cfg: LlamaModelConfig, num_blocks: int, block_size: int, dtype: torch.dtype, device,
                 max_blocks: int | None = None):
        max_blocks = num_blocks if max_blocks is None else max_blocks
        if not 1 <= num_blocks <= max_blocks:
            raise ValueError(f"need 1 <= num_blocks <= max_blocks, got num_blocks={num_blocks}, max_blocks={max_blocks}")
        self.block_size = block_size
        self.max_blocks = max_blocks
        self.dtype = dtype
        self._block_shape = (block_size, cfg.num_kv_heads, cfg.head_dim)
        self._layer_block_bytes = block_size * cfg.num_kv_heads * cfg.head_dim * dtype.itemsize
        self._region_bytes = round_up(max_blocks * self._layer_block_bytes, REGION_ALIGNMENT)
        self.arena = MemoryArena(2 * cfg.num_layers * self._region_bytes, device)
        assert self._region_bytes % self.arena.page_size == 0, "regions must be whole pages of the arena"
        self._num_layers = cfg.num_layers
        self._capacity = 0
        self.k: list[torch.Tensor] = []
        self.v: list[torch.Tensor] = []
        self.resize(num_blocks)

    @property
    def num_blocks(self) -> int:
        """The current capacity in blocks."""
        return self._capacity

    @staticmethod
    def block_bytes(cfg: LlamaModelConfig, block_size: int, dtype: torch.dtype) -> int:
        """Bytes of one block across all layers, K and V."""
        return block_size * cfg.kv_bytes_per_token(dtype.itemsize)

    def nbytes(self) -> int:
        """Bytes of the blocks in the pool (whole pages at the region ends are not counted)."""
        return 2 * self._num_layers * self._capacity * self._layer_block_bytes

    def resize(self, new_capacity: int) -> None:
        """Add blocks ``capacity .. new_capacity - 1`` (grow) or release ``new_capacity .. capacity - 1``
        (shrink). The caller must have moved any live block out of a released range first."""
        if not 1 <= new_capacity <= self.max_blocks:
            raise ValueError(f"KV capacity must lie in [1, max_blocks={self.max_blocks}], got {new_capacity}")
        low, high = sorted((self._capacity, new_capacity))
        span = (low * self._layer_block_bytes, (high - low) * self._layer_block_bytes)
        for region in range(2 * self._num_layers):
            start = region * self._region_bytes + span[0]
            if new_capacity > self._capacity:
                make_usable(self.arena, start, span[1])
            else:
                self.arena.release(start, span[1])
        self._capacity = new_capacity
        self._bind_views()

    def move_blocks(self, moves: list[tuple[int, int]]) -> None:
        """Copy the K and V of block ``old`` into block ``new`` in every layer, for each (old, new)."""
        if not moves:
            return
        device = self.k[0].device
        old = torch.tensor([m[0] for m in moves], dtype=torch.int64, device=device)
        new = torch.tensor([m[1] for m in moves], dtype=torch.int64, device=device)
        for cache in self.k + self.v:
            cache.index_copy_(0, new, cache.index_select(0, old))

    def _bind_views(self) -> None:
        shape = (self._capacity, *self._block_shape)
        views = [self.arena.view(region * self._region_bytes, shape, self.dtype) for region in range(2 * self._num_layers)]
        self.k[:] = views[:self._num_layers]
        self.v[:] = views[self._num_layers:]
