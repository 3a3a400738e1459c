"""Triton RMSNorm (CUDA path); mirrors ``rmsnorm.rmsnorm``."""
import torch
import triton
import triton.language as tl


@triton.jit
def _rmsnorm_kernel(x_ptr, weight_ptr, out_ptr, hidden, eps,
                    BLOCK_H: tl.constexpr):
    """One program normalizes one token row; statistics in float32."""
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK_H)
    mask = cols < hidden
    x = tl.load(x_ptr + row * hidden + cols, mask=mask, other=0.0)
    x32 = x.to(tl.float32)
    variance = tl.sum(x32 * x32, axis=0) / hidden
    normed = (x32 * tl.rsqrt(variance + eps)).to(x.dtype)
    weight = tl.load(weight_ptr + cols, mask=mask)
    tl.store(out_ptr + row * hidden + cols, normed * weight, mask=mask)


def rmsnorm_triton(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """x: [T, hidden], weight: [hidden] (same dtype) -> [T, hidden]."""
    assert x.dim() == 2, f"x must be [T, hidden], got {tuple(x.shape)}"
    assert weight.shape == (x.shape[1],), f"weight must be [{x.shape[1]}], got {tuple(weight.shape)}"
    assert weight.dtype == x.dtype, f"weight dtype {weight.dtype} != x dtype {x.dtype}"
    assert x.is_contiguous() and weight.is_contiguous(), "x and weight must be contiguous"
    num_tokens, hidden = x.shape
    out = torch.empty_like(x)
    grid = (num_tokens,)  # one program per token row
    _rmsnorm_kernel[grid](x, weight, out, hidden, eps, BLOCK_H=triton.next_power_of_2(hidden))
    return out
