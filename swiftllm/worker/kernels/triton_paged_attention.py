"""Triton paged decode attention (CUDA path): reads K/V straight from the cache blocks.

Mirrors ``paged_attention.paged_decode_attention``.
One program serves one (sequence, KV head) pair and all the query heads of its GQA group, so each
K/V page is loaded once per group; the softmax is computed online (running max and sum) page by page.
"""
import torch
import triton
import triton.language as tl


@triton.jit
def _paged_decode_attention_kernel(
        q_ptr, k_cache_ptr, v_cache_ptr, block_tables_ptr, seq_lens_ptr, out_ptr, scale,
        max_blocks, block_size, num_kv_heads, group, head_dim,
        BLOCK_GROUP: tl.constexpr, BLOCK_PAGE: tl.constexpr, BLOCK_D: tl.constexpr):
    seq = tl.program_id(0)
    kv_head = tl.program_id(1)
    heads = tl.arange(0, BLOCK_GROUP)
    page_pos = tl.arange(0, BLOCK_PAGE)
    dims = tl.arange(0, BLOCK_D)
    head_mask = heads < group
    dim_mask = dims < head_dim

    num_q_heads = num_kv_heads * group
    q_rows = (seq * num_q_heads + kv_head * group + heads) * head_dim                    # [G]
    q_mask = head_mask[:, None] & dim_mask[None, :]
    q = tl.load(q_ptr + q_rows[:, None] + dims[None, :], mask=q_mask, other=0.0).to(tl.float32)  # [G, D]

    seq_len = tl.load(seq_lens_ptr + seq)
    running_max = tl.full([BLOCK_GROUP], float("-inf"), tl.float32)                    # [G]
    running_sum = tl.zeros([BLOCK_GROUP], tl.float32)                                  # [G]
    acc = tl.zeros([BLOCK_GROUP, BLOCK_D], tl.float32)                                 # [G, D]
    for page in range(0, tl.cdiv(seq_len, block_size)):
        block_id = tl.load(block_tables_ptr + seq * max_blocks + page).to(tl.int64)
        pos_valid = (page_pos < block_size) & (page * block_size + page_pos < seq_len)  # [P]
        kv_rows = ((block_id * block_size + page_pos) * num_kv_heads + kv_head) * head_dim  # [P]
        kv_mask = pos_valid[:, None] & dim_mask[None, :]
        keys = tl.load(k_cache_ptr + kv_rows[:, None] + dims[None, :], mask=kv_mask, other=0.0).to(tl.float32)    # [P, D]
        values = tl.load(v_cache_ptr + kv_rows[:, None] + dims[None, :], mask=kv_mask, other=0.0).to(tl.float32)  # [P, D]

        scores = tl.sum(q[:, None, :] * keys[None, :, :], axis=2) * scale              # [G, P]
        scores = tl.where(pos_valid[None, :], scores, float("-inf"))
        new_max = tl.maximum(running_max, tl.max(scores, axis=1))                      # [G]
        rescale = tl.exp(running_max - new_max)                                        # [G]
        probs = tl.exp(scores - new_max[:, None])                                      # [G, P]
        running_sum = running_sum * rescale + tl.sum(probs, axis=1)
        acc = acc * rescale[:, None] + tl.sum(probs[:, :, None] * values[None, :, :], axis=1)
        running_max = new_max

    out = acc / running_sum[:, None]                                                   # [G, D]
    tl.store(out_ptr + q_rows[:, None] + dims[None, :], out.to(out_ptr.dtype.element_ty), mask=q_mask)


def paged_decode_attention_triton(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                                  block_tables: torch.Tensor, seq_lens: torch.Tensor, scale: float) -> torch.Tensor:
    """One new token per sequence attends over its whole cached context (its own K/V included).

    q: [S, num_q_heads, head_dim]; k_cache, v_cache: [num_blocks, block_size, num_kv_heads, head_dim];
    block_tables: [S, max_blocks] int32/int64; seq_lens: [S] int32/int64, each >= 1 and covered by
    its block table (not checked on device) -> out [S, num_q_heads, head_dim].
    """
    assert q.dim() == 3, f"q must be [S, heads, head_dim], got {tuple(q.shape)}"
    num_seqs, num_q_heads, head_dim = q.shape
    assert k_cache.dim() == 4 and v_cache.shape == k_cache.shape, "caches must be equal [NB, bs, kv_heads, d]"
    _, block_size, num_kv_heads, cache_head_dim = k_cache.shape
    assert cache_head_dim == head_dim, f"cache head_dim {cache_head_dim} != q head_dim {head_dim}"
    assert num_q_heads % num_kv_heads == 0, f"{num_q_heads} query heads not a multiple of {num_kv_heads} KV heads"
    assert block_tables.dim() == 2 and block_tables.shape[0] == num_seqs, \
        f"block_tables must be [{num_seqs}, max_blocks], got {tuple(block_tables.shape)}"
    assert seq_lens.shape == (num_seqs,), f"seq_lens must be [{num_seqs}], got {tuple(seq_lens.shape)}"
    for name, index in (("block_tables", block_tables), ("seq_lens", seq_lens)):
        assert index.dtype in (torch.int32, torch.int64), f"{name} must be int32/int64, got {index.dtype}"
    assert q.dtype == k_cache.dtype == v_cache.dtype, "q and caches must share one dtype"
    assert all(t.is_contiguous() for t in (q, k_cache, v_cache, block_tables, seq_lens)), \
        "all inputs must be contiguous"
    group = num_q_heads // num_kv_heads
    out = torch.empty_like(q)
    grid = (num_seqs, num_kv_heads)  # one program per (sequence, KV head); it serves the GQA group
    _paged_decode_attention_kernel[grid](
        q, k_cache, v_cache, block_tables, seq_lens, out, scale,
        block_tables.shape[1], block_size, num_kv_heads, group, head_dim,
        BLOCK_GROUP=triton.next_power_of_2(group), BLOCK_PAGE=triton.next_power_of_2(block_size),
        BLOCK_D=triton.next_power_of_2(head_dim))
    return out
