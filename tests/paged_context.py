"""Random paged KV caches shared by the decode-attention kernel tests (C++ and Triton)."""
import torch

# (q_heads, kv_heads, head_dim, block_size, seq_lens)
PAGED_CASES = [
    (4, 4, 32, 16, [1]),                   # multi-head, one token of context
    (9, 3, 64, 16, [1, 17, 40, 5]),        # SmolLM2 GQA (group 3), partial last pages
    (6, 2, 24, 5, [13, 3]),                # non-power-of-2 head_dim and block_size
    (8, 1, 16, 4, [9, 32, 2]),             # multi-query
    (4, 2, 20, 3, [7, 1, 11]),             # head_dim not a multiple of the 8 AVX2 lanes
]


def random_paged_context(seq_lens: list[int], num_blocks: int, block_size: int, kv_heads: int, head_dim: int,
                         dtype: torch.dtype, device: str | torch.device = "cpu"
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random caches and per-sequence block tables over disjoint, shuffled blocks (``num_blocks`` must cover them)."""
    max_blocks = max(-(-n // block_size) for n in seq_lens) + 1
    k_cache = torch.randn(num_blocks, block_size, kv_heads, head_dim, device=device).to(dtype)
    v_cache = torch.randn_like(k_cache)
    block_ids = torch.randperm(num_blocks, device=device)[:len(seq_lens) * max_blocks]
    return k_cache, v_cache, block_ids.view(len(seq_lens), max_blocks)
