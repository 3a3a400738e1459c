"""Triton fused SiLU-and-multiply (CUDA path); mirrors ``silu_and_mul.silu_and_mul``."""
import torch
import triton
import triton.language as tl

BLOCK_I = 1024


@triton.jit
def _silu_and_mul_kernel(gate_up_ptr, out_ptr, intermediate,
                         BLOCK: tl.constexpr):
    """out[t, i] = silu(gate[t, i]) * up[t, i] with gate = gate_up[t, :I], up = gate_up[t, I:]."""
    token = tl.program_id(0)
    cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = cols < intermediate
    row = gate_up_ptr + token * 2 * intermediate
    gate = tl.load(row + cols, mask=mask, other=0.0)
    up = tl.load(row + intermediate + cols, mask=mask, other=0.0)
    gate32 = gate.to(tl.float32)
    silu = (gate32 * tl.sigmoid(gate32)).to(gate.dtype)
    tl.store(out_ptr + token * intermediate + cols, silu * up, mask=mask)


def silu_and_mul_triton(gate_up: torch.Tensor) -> torch.Tensor:
    """gate_up: [T, 2 * I] (gate first, then up) -> [T, I]."""
    assert gate_up.dim() == 2 and gate_up.shape[1] % 2 == 0, \
        f"gate_up must be [T, 2 * I], got {tuple(gate_up.shape)}"
    assert gate_up.is_contiguous(), "gate_up must be contiguous"
    num_tokens, intermediate = gate_up.shape[0], gate_up.shape[1] // 2
    out = torch.empty(num_tokens, intermediate, dtype=gate_up.dtype, device=gate_up.device)
    grid = (num_tokens, triton.cdiv(intermediate, BLOCK_I))  # (token, column tile)
    _silu_and_mul_kernel[grid](gate_up, out, intermediate, BLOCK=BLOCK_I)
    return out
