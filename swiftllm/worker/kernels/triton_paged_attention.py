"""Triton paged decode attention (CUDA path): reads K/V straight from the cache blocks, split over the context.

Mirrors ``paged_attention.paged_decode_attention``. Each sequence's context is cut into partitions of
``partition`` tokens; one program serves one (sequence, KV head, partition) and all the query heads of its GQA
group, so each K/V row is loaded once per group. It walks its partition BLOCK_N tokens at a time (a tile may span
several cache blocks: the block of every position is looked up), computes scores and the weighted values with
``tl.dot`` (the group padded to 16 rows, float32 accumulation; float32 inputs use IEEE products) and keeps an
online softmax (running max and sum).

- One partition (short contexts): the program writes the normalized output itself.
- Several (long contexts, or few sequences): each writes its normalized partial output with its max and sum, and
  a second kernel merges a head's partials, weighting each by exp(max - global max) * sum.

The partition is chosen so that the grid has about ``PROGRAMS_PER_SM`` programs per multiprocessor: a single
sequence of 4096 tokens then keeps the whole GPU busy instead of one program per KV head. Neither kernel
specializes on the partition, the number of partitions or the block-table width, so a warm-up compiles them once.
"""
from functools import cache

import torch
import triton
import triton.language as tl

BLOCK_N = 64              # context tokens per inner step
MIN_DOT_ROWS = 16         # tl.dot needs at least 16 rows: a GQA group is padded to this
PROGRAMS_PER_SM = 4


@triton.jit(do_not_specialize=["max_blocks", "partition", "num_partitions"])
def _paged_decode_partition_kernel(
        q_ptr, k_cache_ptr, v_cache_ptr, block_tables_ptr, seq_lens_ptr,
        out_ptr, part_out_ptr, part_max_ptr, part_sum_ptr, scale,
        max_blocks, partition, num_partitions, block_size, num_kv_heads, group, head_dim,
        BLOCK_GROUP: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
        DIRECT: tl.constexpr, IEEE: tl.constexpr):
    seq = tl.program_id(0)
    kv_head = tl.program_id(1)
    part = tl.program_id(2)
    heads = tl.arange(0, BLOCK_GROUP)
    dims = tl.arange(0, BLOCK_D)
    offsets = tl.arange(0, BLOCK_N)
    head_mask = heads < group
    dim_mask = dims < head_dim

    num_q_heads = num_kv_heads * group
    q_heads = kv_head * group + heads                                                     # [G]
    q_rows = (seq * num_q_heads + q_heads).to(tl.int64) * head_dim                        # [G]
    q_mask = head_mask[:, None] & dim_mask[None, :]
    q = tl.load(q_ptr + q_rows[:, None] + dims[None, :], mask=q_mask, other=0.0)          # [G, D]

    seq_len = tl.load(seq_lens_ptr + seq)
    start = part * partition
    end = tl.minimum(start + partition, seq_len)
    running_max = tl.full([BLOCK_GROUP], float("-inf"), tl.float32)                       # [G]
    running_sum = tl.zeros([BLOCK_GROUP], tl.float32)                                     # [G]
    acc = tl.zeros([BLOCK_GROUP, BLOCK_D], tl.float32)                                    # [G, D]
    for tile_start in range(start, end, BLOCK_N):
        pos = tile_start + offsets                                                        # [N]
        valid = pos < end
        block_ids = tl.load(block_tables_ptr + seq * max_blocks + pos // block_size, mask=valid, other=0).to(tl.int64)
        kv_rows = ((block_ids * block_size + pos % block_size) * num_kv_heads + kv_head) * head_dim   # [N]
        kv_mask = valid[:, None] & dim_mask[None, :]
        keys = tl.load(k_cache_ptr + kv_rows[:, None] + dims[None, :], mask=kv_mask, other=0.0)      # [N, D]
        values = tl.load(v_cache_ptr + kv_rows[:, None] + dims[None, :], mask=kv_mask, other=0.0)    # [N, D]
        if IEEE:
            scores = tl.dot(q, tl.trans(keys), input_precision="ieee")                   # [G, N]
        else:
            scores = tl.dot(q, tl.trans(keys))
        scores = tl.where(valid[None, :], scores * scale, float("-inf"))
        new_max = tl.maximum(running_max, tl.max(scores, axis=1))                         # [G]: finite, a tile holds a valid token
        rescale = tl.exp(running_max - new_max)                                           # [G]
        probs = tl.exp(scores - new_max[:, None])                                         # [G, N]
        running_sum = running_sum * rescale + tl.sum(probs, axis=1)
        if IEEE:
            weighted = tl.dot(probs, values, input_precision="ieee")                       # [G, D]
        else:
            weighted = tl.dot(probs.to(values.dtype), values)
        acc = acc * rescale[:, None] + weighted
        running_max = new_max

    out = acc / tl.where(running_sum > 0, running_sum, 1.0)[:, None]                      # [G, D]; 0 for an empty partition
    if DIRECT:
        tl.store(out_ptr + q_rows[:, None] + dims[None, :], out.to(out_ptr.dtype.element_ty), mask=q_mask)
    else:
        part_rows = (seq * num_q_heads + q_heads).to(tl.int64) * num_partitions + part   # [G]
        tl.store(part_out_ptr + part_rows[:, None] * head_dim + dims[None, :], out, mask=q_mask)
        tl.store(part_max_ptr + part_rows, running_max, mask=head_mask)
        tl.store(part_sum_ptr + part_rows, running_sum, mask=head_mask)


@triton.jit(do_not_specialize=["partition", "num_partitions"])
def _paged_decode_reduce_kernel(part_out_ptr, part_max_ptr, part_sum_ptr, seq_lens_ptr, out_ptr,
                                partition, num_partitions, head_dim, BLOCK_D: tl.constexpr):
    """One program merges the partials of one (sequence, query head) over the partitions its context reaches."""
    seq = tl.program_id(0)
    head = tl.program_id(1)
    dims = tl.arange(0, BLOCK_D)
    dim_mask = dims < head_dim
    row = seq * tl.num_programs(1) + head
    first = row.to(tl.int64) * num_partitions
    used = tl.cdiv(tl.load(seq_lens_ptr + seq), partition)                                # partition 0 always holds tokens
    global_max = tl.load(part_max_ptr + first)
    for part in range(1, used):
        global_max = tl.maximum(global_max, tl.load(part_max_ptr + first + part))
    total = tl.load(part_sum_ptr + first) * tl.exp(tl.load(part_max_ptr + first) - global_max)
    acc = total * tl.load(part_out_ptr + first * head_dim + dims, mask=dim_mask, other=0.0)   # [D]
    for part in range(1, used):
        weight = tl.exp(tl.load(part_max_ptr + first + part) - global_max) * tl.load(part_sum_ptr + first + part)
        total += weight
        acc += weight * tl.load(part_out_ptr + (first + part) * head_dim + dims, mask=dim_mask, other=0.0)
    out = acc / total
    tl.store(out_ptr + row.to(tl.int64) * head_dim + dims, out.to(out_ptr.dtype.element_ty), mask=dim_mask)


def paged_decode_attention_triton(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                                  block_tables: torch.Tensor, seq_lens: torch.Tensor, scale: float,
                                  max_seq_len: int | None = None, partition: int | None = None) -> torch.Tensor:
    """One new token per sequence attends over its whole cached context (its own K/V included).

    q: [S, num_q_heads, head_dim]; k_cache, v_cache: [num_blocks, block_size, num_kv_heads, head_dim];
    block_tables: [S, max_blocks] int32/int64; seq_lens: [S] int32/int64, each >= 1 and covered by
    its block table (not checked on device) -> out [S, num_q_heads, head_dim].
    ``max_seq_len``: max(seq_lens), when the caller knows it (else read from the device, a sync);
    ``partition``: context tokens per program (default: chosen to fill the GPU).
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
    max_seq_len = int(seq_lens.max()) if max_seq_len is None else max_seq_len
    if partition is None:
        partition = partition_tokens(num_seqs * num_kv_heads, max_seq_len, _num_sms(q.device))
    assert partition >= 1, f"partition must be >= 1 token, got {partition}"
    num_partitions = triton.cdiv(max_seq_len, partition)
    group = num_q_heads // num_kv_heads
    block_d = triton.next_power_of_2(head_dim)
    out = torch.empty_like(q)
    partials = _partials(num_seqs, num_q_heads, num_partitions, head_dim, q.device)
    grid = (num_seqs, num_kv_heads, num_partitions)   # one program per (sequence, KV head, partition): its GQA group
    _paged_decode_partition_kernel[grid](
        q, k_cache, v_cache, block_tables, seq_lens, out, *partials, scale,
        block_tables.shape[1], partition, num_partitions, block_size, num_kv_heads, group, head_dim,
        BLOCK_GROUP=max(MIN_DOT_ROWS, triton.next_power_of_2(group)), BLOCK_N=BLOCK_N, BLOCK_D=block_d,
        DIRECT=num_partitions == 1, IEEE=q.dtype == torch.float32)
    if num_partitions > 1:
        _paged_decode_reduce_kernel[(num_seqs, num_q_heads)](   # one program per (sequence, query head)
            *partials, seq_lens, out, partition, num_partitions, head_dim, BLOCK_D=block_d)
    return out


def partition_tokens(num_programs: int, max_seq_len: int, num_sms: int) -> int:
    """Context tokens per partition: the whole context when the (sequence, KV head) programs alone give every
    multiprocessor ``PROGRAMS_PER_SM`` of them, else small enough to, in whole inner steps (at least one)."""
    partitions = triton.cdiv(PROGRAMS_PER_SM * num_sms, num_programs)
    tokens = triton.cdiv(max_seq_len, partitions)
    return triton.cdiv(tokens, BLOCK_N) * BLOCK_N


def _partials(num_seqs: int, num_q_heads: int, num_partitions: int, head_dim: int, device) -> tuple[torch.Tensor, ...]:
    """out [S, hq, P, d], max [S, hq, P], sum [S, hq, P] (float32; tiny placeholders when one partition is direct)."""
    rows = num_seqs * num_q_heads * num_partitions if num_partitions > 1 else 1
    return (torch.empty(rows * head_dim, dtype=torch.float32, device=device),
            torch.empty(rows, dtype=torch.float32, device=device), torch.empty(rows, dtype=torch.float32, device=device))


@cache
def _sms_of(device: torch.device) -> int:
    return torch.cuda.get_device_properties(device).multi_processor_count


def _num_sms(device: torch.device) -> int:
    """Multiprocessors of a CUDA device; 1 for a CPU tensor (Triton's interpreter)."""
    return _sms_of(device) if device.type == "cuda" else 1
