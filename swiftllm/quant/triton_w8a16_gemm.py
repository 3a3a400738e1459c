"""Triton W8A16 GEMM (CUDA path of ``Int8Linear``): ``x @ (codes * scales[:, None]).T`` without ever building the
float weight.

Grid: one program per (BLOCK_M rows of x, BLOCK_N output channels), the tile chosen by M (``gemm_tiles``). Each K
step loads a [BLOCK_K, BLOCK_N] tile of the int8 codes (rows of ``weight`` are output channels, so the tile is read
transposed), converts it to x's dtype (exact: |code| <= 127) and accumulates ``x @ codes`` in float32; the
per-channel scale multiplies the accumulator once at the end. float32 activations use IEEE products, not TF32.
"""
import torch
import triton
import triton.language as tl

from swiftllm.worker.kernels.gemm_tiles import gemm_tile


@triton.jit(do_not_specialize=["M"])
def _w8a16_gemm_kernel(x_ptr, weight_ptr, scales_ptr, out_ptr, M, N, K,
                       BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, IEEE: tl.constexpr):
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)                             # [BM]
    cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)                             # [BN]
    row_mask = rows < M
    col_mask = cols < N
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    for k_start in range(0, K, BLOCK_K):
        ks = k_start + tl.arange(0, BLOCK_K)                                               # [BK]
        k_mask = ks < K
        x = tl.load(x_ptr + rows[:, None].to(tl.int64) * K + ks[None, :],
                    mask=row_mask[:, None] & k_mask[None, :], other=0.0)                             # [BM, BK]
        codes = tl.load(weight_ptr + cols[None, :].to(tl.int64) * K + ks[:, None],
                        mask=col_mask[None, :] & k_mask[:, None], other=0)                           # [BK, BN] int8
        if IEEE:
            acc += tl.dot(x, codes.to(x.dtype), input_precision="ieee")
        else:
            acc += tl.dot(x, codes.to(x.dtype))
    scales = tl.load(scales_ptr + cols, mask=col_mask, other=0.0)                          # [BN] float32
    out = acc * scales[None, :]
    out_mask = row_mask[:, None] & col_mask[None, :]
    tl.store(out_ptr + rows[:, None].to(tl.int64) * N + cols[None, :], out.to(out_ptr.dtype.element_ty), mask=out_mask)


def w8a16_gemm_triton(x: torch.Tensor, weight: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """x: [M, K] float; weight: int8 [N, K]; scales: float32 [N] -> [M, N] in x's dtype."""
    num_tokens, k = x.shape
    assert weight.dtype == torch.int8 and weight.dim() == 2 and weight.shape[1] == k, (
        f"weight must be int8 [N, {k}], got {weight.dtype} {tuple(weight.shape)}")
    n = weight.shape[0]
    assert scales.shape == (n,) and scales.dtype == torch.float32, f"scales must be float32 [{n}], got {scales.dtype} {tuple(scales.shape)}"
    assert all(t.is_contiguous() for t in (x, weight, scales)), "x, weight, scales must be contiguous"
    if num_tokens == 0:
        return x.new_empty(0, n)
    tile = gemm_tile(num_tokens)
    out = torch.empty(num_tokens, n, dtype=x.dtype, device=x.device)
    grid = (triton.cdiv(num_tokens, tile.block_m), triton.cdiv(n, tile.block_n))   # (row tile, column tile)
    _w8a16_gemm_kernel[grid](x, weight, scales, out, num_tokens, n, k,
                             BLOCK_M=tile.block_m, BLOCK_N=tile.block_n, BLOCK_K=tile.block_k,
                             IEEE=x.dtype == torch.float32, num_warps=tile.num_warps, num_stages=tile.num_stages)
    return out
