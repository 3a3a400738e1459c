"""Triton rotary embedding, rotate-half layout (CUDA path); mirrors ``rotary.apply_rotary``."""
import torch
import triton
import triton.language as tl


@triton.jit
def _rotary_kernel(x_ptr, cos_ptr, sin_ptr, out_ptr,
                   x_token_stride, x_head_stride, num_heads, half,
                   BLOCK_HALF: tl.constexpr):
    """One program rotates one (token, head) vector: [x1, x2] -> [x1*c - x2*s, x2*c + x1*s]."""
    token = tl.program_id(0)
    head = tl.program_id(1)
    cols = tl.arange(0, BLOCK_HALF)
    mask = cols < half
    src = x_ptr + token * x_token_stride + head * x_head_stride
    x1 = tl.load(src + cols, mask=mask, other=0.0)
    x2 = tl.load(src + half + cols, mask=mask, other=0.0)
    c = tl.load(cos_ptr + token * half + cols, mask=mask, other=0.0)
    s = tl.load(sin_ptr + token * half + cols, mask=mask, other=0.0)
    dst = out_ptr + (token * num_heads + head) * 2 * half
    tl.store(dst + cols, x1 * c - x2 * s, mask=mask)
    tl.store(dst + half + cols, x2 * c + x1 * s, mask=mask)


def apply_rotary_triton(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x: [T, heads, head_dim] (last dim contiguous, e.g. a slice of a fused QKV output);
    cos, sin: [T, head_dim / 2] -> new contiguous [T, heads, head_dim]."""
    assert x.dim() == 3 and x.shape[2] % 2 == 0, f"x must be [T, heads, even head_dim], got {tuple(x.shape)}"
    num_tokens, num_heads, head_dim = x.shape
    half = head_dim // 2
    for name, table in (("cos", cos), ("sin", sin)):
        assert table.shape == (num_tokens, half), f"{name} must be [{num_tokens}, {half}], got {tuple(table.shape)}"
        assert table.dtype == x.dtype, f"{name} dtype {table.dtype} != x dtype {x.dtype}"
        assert table.is_contiguous(), f"{name} must be contiguous"
    assert x.stride(2) == 1, "x must be contiguous along head_dim"
    out = torch.empty(num_tokens, num_heads, head_dim, dtype=x.dtype, device=x.device)
    grid = (num_tokens, num_heads)  # one program per (token, head)
    _rotary_kernel[grid](x, cos, sin, out, x.stride(0), x.stride(1), num_heads, half,
                         BLOCK_HALF=triton.next_power_of_2(half))
    return out
