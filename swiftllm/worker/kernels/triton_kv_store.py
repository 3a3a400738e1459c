"""Triton scatter of new keys/values into the paged cache (CUDA path); mirrors ``kv_store.store_kv``."""
import torch
import triton
import triton.language as tl


@triton.jit
def _store_kv_kernel(k_cache_ptr, v_cache_ptr, k_ptr, v_ptr, slot_mapping_ptr, row_elems,
                     BLOCK: tl.constexpr):
    """One program copies one token's [kv_heads * head_dim] keys and values into its cache slot."""
    token = tl.program_id(0)
    cols = tl.arange(0, BLOCK)
    mask = cols < row_elems
    slot = tl.load(slot_mapping_ptr + token).to(tl.int64)
    src = token.to(tl.int64) * row_elems + cols
    dst = slot * row_elems + cols
    tl.store(k_cache_ptr + dst, tl.load(k_ptr + src, mask=mask), mask=mask)
    tl.store(v_cache_ptr + dst, tl.load(v_ptr + src, mask=mask), mask=mask)


def store_kv_triton(k_cache: torch.Tensor, v_cache: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                    slot_mapping: torch.Tensor) -> None:
    """In place. k_cache, v_cache: [num_blocks, block_size, kv_heads, head_dim];
    k, v: [T, kv_heads, head_dim]; slot_mapping: [T] int32/int64, slot = block_id * block_size + offset,
    every slot in range (not checked on device)."""
    assert k_cache.dim() == 4 and v_cache.shape == k_cache.shape, "caches must be equal [NB, bs, kv_heads, d]"
    num_tokens = k.shape[0]
    assert k.shape == v.shape == (num_tokens, *k_cache.shape[2:]), \
        f"k, v must be [T, {k_cache.shape[2]}, {k_cache.shape[3]}], got {tuple(k.shape)} and {tuple(v.shape)}"
    assert slot_mapping.shape == (num_tokens,), f"slot_mapping must be [{num_tokens}], got {tuple(slot_mapping.shape)}"
    assert slot_mapping.dtype in (torch.int32, torch.int64), f"slot_mapping must be int32/int64, got {slot_mapping.dtype}"
    assert k.dtype == v.dtype == k_cache.dtype == v_cache.dtype, "k, v and caches must share one dtype"
    assert all(t.is_contiguous() for t in (k_cache, v_cache, k, v, slot_mapping)), "all inputs must be contiguous"
    row_elems = k_cache.shape[2] * k_cache.shape[3]
    grid = (num_tokens,)  # one program per new token
    _store_kv_kernel[grid](k_cache, v_cache, k, v, slot_mapping, row_elems,
                           BLOCK=triton.next_power_of_2(row_elems))
