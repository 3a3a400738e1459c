import torch


def store_kv(k_cache: torch.Tensor, v_cache: torch.Tensor, k: torch.Tensor, v: torch.Tensor, slot_mapping: torch.Tensor) -> None:
    """Write new keys/values into one layer's paged cache.

    k_cache, v_cache: [num_blocks, block_size, num_kv_heads, head_dim]
    k, v: [T, num_kv_heads, head_dim]; slot_mapping: [T] int64, slot = block_id * block_size + offset.
    """
    num_kv_heads, head_dim = k_cache.shape[-2:]
    k_cache.view(-1, num_kv_heads, head_dim)[slot_mapping] = k
    v_cache.view(-1, num_kv_heads, head_dim)[slot_mapping] = v
