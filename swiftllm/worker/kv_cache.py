"""The paged KV pool (data plane): per-layer K and V tensors of ``num_blocks`` blocks."""
import torch

from swiftllm.model_config import LlamaModelConfig


class PagedKVCache:
    """k[i], v[i]: layer i's cache, [num_blocks, block_size, num_kv_heads, head_dim]."""

    def __init__(self, cfg: LlamaModelConfig, num_blocks: int, block_size: int, dtype: torch.dtype, device):
        shape = (num_blocks, block_size, cfg.num_kv_heads, cfg.head_dim)
        self.block_size = block_size
        self.k = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(cfg.num_layers)]
        self.v = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(cfg.num_layers)]

    @property
    def num_blocks(self) -> int:
        return self.k[0].shape[0]

    @staticmethod
    def block_bytes(cfg: LlamaModelConfig, block_size: int, dtype: torch.dtype) -> int:
        """Bytes of one block across all layers, K and V."""
        return block_size * cfg.kv_bytes_per_token(torch.tensor([], dtype=dtype).element_size())

    def nbytes(self) -> int:
        return sum(t.nbytes for t in self.k + self.v)
