"""Triton W4A16 GEMM straight on the AutoAWQ GEMM layout (CUDA path of ``AwqLinear``).

Mirrors ``F.linear(x, dequantize_groups(from_awq_gemm(qweight, qzeros, scales, group_size)))``.
Grid: one program per (BLOCK_M rows of x, BLOCK_N output channels), the tile chosen by M (``gemm_tiles``). Each K
step loads a [BLOCK_K, BLOCK_N] gather of ``qweight``'s int32 words (eight channels share one word), unpacks its
nibbles in AWQ's interleaved order, dequantizes with the tile's single group (BLOCK_K divides group_size; scales
read as stored, converted in registers) and accumulates in float32 (float32 activations: IEEE products, not TF32).
"""
import torch
import triton
import triton.language as tl

from swiftllm.worker.kernels.gemm_tiles import gemm_tile


@triton.jit(do_not_specialize=["M"])
def _awq_gemm_kernel(x_ptr, qweight_ptr, qzeros_ptr, scales_ptr, out_ptr, M, N, K, group_size,
                     BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, IEEE: tl.constexpr):
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)                             # [BM]
    cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)                             # [BN]
    row_mask = rows < M
    col_mask = cols < N
    packed_cols = cols // 8
    lane = cols % 8
    shifts = ((lane % 2) * 4 + lane // 2) * 4    # bit offset of channel `lane`: AWQ order 0,2,4,6,1,3,5,7
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    for k_start in range(0, K, BLOCK_K):
        ks = k_start + tl.arange(0, BLOCK_K)                                               # [BK]
        x = tl.load(x_ptr + rows[:, None].to(tl.int64) * K + ks[None, :], mask=row_mask[:, None], other=0.0)  # [BM, BK]
        packed = tl.load(qweight_ptr + ks[:, None].to(tl.int64) * (N // 8) + packed_cols[None, :],
                         mask=col_mask[None, :], other=0)                                           # [BK, BN]
        codes = (packed >> shifts[None, :]) & 0xF
        group = k_start // group_size
        zeros = (tl.load(qzeros_ptr + group * (N // 8) + packed_cols, mask=col_mask, other=0) >> shifts) & 0xF  # [BN]
        scales = tl.load(scales_ptr + group * N + cols, mask=col_mask, other=0.0).to(tl.float32)             # [BN]
        weight = ((codes - zeros[None, :]).to(tl.float32) * scales[None, :]).to(x.dtype)                     # [BK, BN]
        if IEEE:
            acc += tl.dot(x, weight, input_precision="ieee")
        else:
            acc += tl.dot(x, weight)
    out_mask = row_mask[:, None] & col_mask[None, :]
    tl.store(out_ptr + rows[:, None].to(tl.int64) * N + cols[None, :], acc.to(out_ptr.dtype.element_ty), mask=out_mask)


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
    tile = gemm_tile(num_tokens)
    block_k = min(tile.block_k, group_size)     # one group per K step
    out = torch.empty(num_tokens, n, dtype=x.dtype, device=x.device)
    grid = (triton.cdiv(num_tokens, tile.block_m), triton.cdiv(n, tile.block_n))   # (row tile, column tile)
    _awq_gemm_kernel[grid](x, qweight, qzeros, scales, out, num_tokens, n, k, group_size,
                           BLOCK_M=tile.block_m, BLOCK_N=tile.block_n, BLOCK_K=block_k,
                           IEEE=x.dtype == torch.float32, num_warps=tile.num_warps, num_stages=tile.num_stages)
    return out
