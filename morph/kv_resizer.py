"""KVResizer: turns the bytes freed by quantized layers into KV blocks, and gives them back.

The KV capacity tracks the freed bytes: ``capacity = base_capacity + freed_bytes // block_bytes``,
where ``base_capacity`` is the pool's full-precision size. So weights + KV + workspace never exceed
what they were at full precision, and hence never exceed the budget.

The resizing itself is the engine's (``LLMEngine.resize_kv_pool``: block manager, KV cache and memory plan
together; a shrink moves live blocks first and is refused, changing nothing, when they or the whole need of an
accepted request would not fit). This
class only decides the capacity. Resizes run between two steps, so no forward pass sees a half-moved block.
"""
from swiftllm.server.engine import LLMEngine
from swiftllm.server.structs import KVResize


class KVResizer:
    def __init__(self, engine: LLMEngine):
        self.engine = engine
        self.base_capacity = engine.kv_capacity

    @property
    def capacity(self) -> int:
        return self.engine.kv_capacity

    @property
    def block_bytes(self) -> int:
        return self.engine.memory.block_bytes

    def capacity_for(self, freed_bytes: int) -> int:
        """The capacity the budget allows when ``freed_bytes`` of weights are released."""
        return min(self.base_capacity + freed_bytes // self.block_bytes, self.engine.max_kv_blocks)

    def resize(self, new_capacity: int) -> KVResize | None:
        """Grow or shrink to ``new_capacity`` blocks; ``None`` (nothing changed) when the live blocks or an accepted
        request's whole need would not fit (``LLMEngine.min_kv_capacity``)."""
        return self.engine.resize_kv_pool(new_capacity)
