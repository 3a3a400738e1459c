"""Triton W4A16 GEMM straight on the AutoAWQ GEMM layout (CUDA path of ``AwqLinear``).

Mirrors ``F.linear(x, dequantize_groups(from_awq_gemm(qweight, qzeros, scales, group_size)))``. Two paths, by the
number of activation rows M:

- M <= ``DEQUANT_MIN_TOKENS`` (decode, small prefill chunks): ``_awq_gemm_kernel``. One program per (BLOCK_M rows
  of x, BLOCK_N output channels, K slice). Each K step loads a [BLOCK_K, BLOCK_N / 8] tile of ``qweight``'s int32
  words (eight channels per word, read once and contiguously along a row), unpacks the nibbles in AWQ's interleaved
  order into [BLOCK_K, BLOCK_N], dequantizes with the step's single group (BLOCK_K divides group_size; scales read
  as stored, converted in registers) and accumulates in float32 (float32 activations: IEEE products, not TF32).
  Decode has few output tiles, so K is split until the grid has about ``PROGRAMS_PER_SM`` programs per
  multiprocessor; the slices' float32 partial sums are added afterwards.
- M > ``DEQUANT_MIN_TOKENS`` (prefill): ``_awq_dequantize_kernel`` writes the weight in x's dtype once, then one
  dense GEMM (cuBLAS) at the GPU's matrix rate. The temporary is one [K, N] matrix, freed after the call.
"""
import functools

import torch
import triton
import triton.language as tl

from swiftllm.worker.kernels.gemm_tiles import GEMM_TILES, GemmTile, gemm_tile

DEQUANT_MIN_TOKENS = GEMM_TILES[-2].max_tokens   # beyond the last small tile: dequantize + dense GEMM
PROGRAMS_PER_SM = 4
WIDE_BLOCK_N = 128          # 16 words: 64 contiguous bytes of a qweight row per K step
DEQUANT_BLOCK = (32, 128)   # (BLOCK_K, BLOCK_N) of the dequantize kernel


@triton.jit
def _unpack_awq(packed, shifts, ROWS: tl.constexpr, COLUMNS: tl.constexpr):
    """[ROWS, COLUMNS / 8] int32 words -> [ROWS, COLUMNS] 4-bit codes, channel 8w + l from bits shifts[l] of word w."""
    codes = (packed[:, :, None] >> shifts[None, None, :]) & 0xF                          # [ROWS, COLUMNS / 8, 8]
    return tl.reshape(codes, (ROWS, COLUMNS))


@triton.jit
def _awq_shifts():
    lanes = tl.arange(0, 8)
    return ((lanes % 2) * 4 + lanes // 2) * 4    # bit offset of channel `lane`: AWQ order 0,2,4,6,1,3,5,7


@triton.jit(do_not_specialize=["M", "k_per_split"])
def _awq_gemm_kernel(x_ptr, qweight_ptr, qzeros_ptr, scales_ptr, out_ptr, M, N, K, group_size, k_per_split,
                     BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, IEEE: tl.constexpr):
    """out[pid_k] = x[rows, K slice] @ W[K slice, cols] (out: [splits, M, N]; x's dtype when unsplit)."""
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)                             # [BM]
    words = tl.program_id(1) * (BLOCK_N // 8) + tl.arange(0, BLOCK_N // 8)               # [BN / 8]
    cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)                             # [BN]
    row_mask = rows < M
    word_mask = words < N // 8
    col_mask = cols < N
    shifts = _awq_shifts()
    k_begin = tl.program_id(2) * k_per_split
    k_end = tl.minimum(K, k_begin + k_per_split)
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    for k_start in range(k_begin, k_end, BLOCK_K):
        ks = k_start + tl.arange(0, BLOCK_K)                                               # [BK]
        x = tl.load(x_ptr + rows[:, None].to(tl.int64) * K + ks[None, :], mask=row_mask[:, None], other=0.0)  # [BM, BK]
        packed = tl.load(qweight_ptr + ks[:, None].to(tl.int64) * (N // 8) + words[None, :],
                         mask=word_mask[None, :], other=0)                                          # [BK, BN / 8]
        codes = _unpack_awq(packed, shifts, BLOCK_K, BLOCK_N)                                        # [BK, BN]
        group = k_start // group_size
        packed_zeros = tl.load(qzeros_ptr + group * (N // 8) + words, mask=word_mask, other=0)     # [BN / 8]
        zeros = tl.reshape((packed_zeros[:, None] >> shifts[None, :]) & 0xF, (BLOCK_N,))           # [BN]
        scales = tl.load(scales_ptr + group * N + cols, mask=col_mask, other=0.0).to(tl.float32)   # [BN]
        weight = ((codes - zeros[None, :]).to(tl.float32) * scales[None, :]).to(x.dtype)           # [BK, BN]
        if IEEE:
            acc += tl.dot(x, weight, input_precision="ieee")
        else:
            acc += tl.dot(x, weight)
    out_rows = tl.program_id(2).to(tl.int64) * M + rows
    out_mask = row_mask[:, None] & col_mask[None, :]
    tl.store(out_ptr + out_rows[:, None] * N + cols[None, :], acc.to(out_ptr.dtype.element_ty), mask=out_mask)


@triton.jit
def _awq_dequantize_kernel(qweight_ptr, qzeros_ptr, scales_ptr, out_ptr, N, K, group_size,
                           BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """out[K, N] = (codes - zeros) * scales in out's dtype."""
    ks = tl.program_id(0) * BLOCK_K + tl.arange(0, BLOCK_K)                               # [BK]
    words = tl.program_id(1) * (BLOCK_N // 8) + tl.arange(0, BLOCK_N // 8)               # [BN / 8]
    cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)                             # [BN]
    word_mask = words < N // 8
    col_mask = cols < N
    shifts = _awq_shifts()
    packed = tl.load(qweight_ptr + ks[:, None].to(tl.int64) * (N // 8) + words[None, :],
                     mask=word_mask[None, :], other=0)                                              # [BK, BN / 8]
    codes = _unpack_awq(packed, shifts, BLOCK_K, BLOCK_N)                                            # [BK, BN]
    group = (tl.program_id(0) * BLOCK_K) // group_size
    packed_zeros = tl.load(qzeros_ptr + group * (N // 8) + words, mask=word_mask, other=0)         # [BN / 8]
    zeros = tl.reshape((packed_zeros[:, None] >> shifts[None, :]) & 0xF, (BLOCK_N,))               # [BN]
    scales = tl.load(scales_ptr + group * N + cols, mask=col_mask, other=0.0).to(tl.float32)       # [BN]
    weight = (codes - zeros[None, :]).to(tl.float32) * scales[None, :]                             # [BK, BN]
    tl.store(out_ptr + ks[:, None].to(tl.int64) * N + cols[None, :], weight.to(out_ptr.dtype.element_ty),
             mask=col_mask[None, :])


def awq_gemm_triton(x: torch.Tensor, qweight: torch.Tensor, qzeros: torch.Tensor, scales: torch.Tensor,
                    group_size: int) -> torch.Tensor:
    """x: [M, K] (K = qweight rows, a multiple of group_size) -> [M, N] in x's dtype.

    qweight: int32 [K, N / 8]; qzeros: int32 [K / group_size, N / 8]; scales: [K / group_size, N] (any float dtype).
    """
    num_tokens, k = x.shape
    assert qweight.dtype == torch.int32 and qweight.shape[0] == k, (
        f"qweight must be int32 [{k}, N / 8], got {qweight.dtype} {tuple(qweight.shape)}")
    n = qweight.shape[1] * 8
    assert k % group_size == 0, f"K={k} must be a multiple of group_size={group_size}"
    assert qzeros.shape == (k // group_size, n // 8), f"qzeros must be [{k // group_size}, {n // 8}], got {tuple(qzeros.shape)}"
    assert scales.shape == (k // group_size, n), f"scales must be [{k // group_size}, {n}], got {tuple(scales.shape)}"
    assert all(t.is_contiguous() for t in (x, qweight, qzeros, scales)), "x, qweight, qzeros, scales must be contiguous"
    if num_tokens == 0:
        return x.new_empty(0, n)
    if num_tokens > DEQUANT_MIN_TOKENS:
        return x @ awq_dequantize_triton(qweight, qzeros, scales, group_size, x.dtype)
    tile = awq_tile(num_tokens, group_size)
    tiles = triton.cdiv(num_tokens, tile.block_m) * triton.cdiv(n, tile.block_n)
    splits, k_per_split = k_splits(k, tile.block_k, tiles, multiprocessors(x.device))
    # float32 partials whatever the split, so one compiled kernel serves every M of a tile
    out = torch.empty(splits, num_tokens, n, dtype=torch.float32, device=x.device)
    grid = (triton.cdiv(num_tokens, tile.block_m), triton.cdiv(n, tile.block_n), splits)   # (row, column, K slice)
    _awq_gemm_kernel[grid](x, qweight, qzeros, scales, out, num_tokens, n, k, group_size, k_per_split,
                           BLOCK_M=tile.block_m, BLOCK_N=tile.block_n, BLOCK_K=tile.block_k,
                           IEEE=x.dtype == torch.float32, num_warps=tile.num_warps, num_stages=tile.num_stages)
    return out.sum(0).to(x.dtype)


def awq_dequantize_triton(qweight: torch.Tensor, qzeros: torch.Tensor, scales: torch.Tensor, group_size: int,
                          dtype: torch.dtype) -> torch.Tensor:
    """The weight [K, N] in ``dtype`` (K a multiple of group_size)."""
    k, n = qweight.shape[0], qweight.shape[1] * 8
    block_k, block_n = min(DEQUANT_BLOCK[0], group_size), DEQUANT_BLOCK[1]
    out = torch.empty(k, n, dtype=dtype, device=qweight.device)
    grid = (k // block_k, triton.cdiv(n, block_n))
    _awq_dequantize_kernel[grid](qweight, qzeros, scales, out, n, k, group_size, BLOCK_N=block_n, BLOCK_K=block_k)
    return out


def awq_tile(num_tokens: int, group_size: int) -> GemmTile:
    """``gemm_tile``'s tile for M, made wide (whole 64-byte runs of a qweight row per K step: K splitting, not narrow
    columns, gives decode its programs) with K steps that divide the group."""
    tile = gemm_tile(num_tokens)
    return GemmTile(tile.max_tokens, tile.block_m, max(tile.block_n, WIDE_BLOCK_N), min(tile.block_k, 64, group_size),
                    tile.num_warps, tile.num_stages)


def k_splits(k: int, block_k: int, tiles: int, num_sms: int) -> tuple[int, int]:
    """(slices, K per slice): enough slices of whole K steps for ``PROGRAMS_PER_SM`` programs per multiprocessor
    over ``tiles`` output tiles, none empty."""
    steps = k // block_k
    wanted = max(1, min(steps, -(-PROGRAMS_PER_SM * num_sms // tiles)))
    steps_per_split = -(-steps // wanted)
    return -(-steps // steps_per_split), steps_per_split * block_k


@functools.cache
def _multiprocessors(device_index: int) -> int:
    return torch.cuda.get_device_properties(device_index).multi_processor_count


def multiprocessors(device: torch.device) -> int:
    """The GPU's multiprocessor count; 4 off a GPU (Triton's interpreter in tests), so that K splits there too."""
    if device.type != "cuda":
        return 4
    return _multiprocessors(torch.cuda.current_device() if device.index is None else device.index)
