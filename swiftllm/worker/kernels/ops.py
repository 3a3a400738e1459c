"""Device dispatch: the C++ kernels (``csrc/decoder_ops.cpp``, ``csrc/paged_decode_attention.cpp``) for float32
on an AVX2 CPU, torch ops for other CPU dtypes, Triton kernels (and flash-attn prefill when installed) on CUDA.

Triton is imported only when a CUDA tensor reaches a kernel, so CPU users never load it.
"""
import importlib.util
from functools import cache
from types import SimpleNamespace

import torch

from swiftllm.worker.kernels import kv_store, paged_attention, rmsnorm as rmsnorm_torch, rotary, silu_and_mul as silu_torch
from swiftllm.worker.kernels.cpu_kernels import cpu_kernels


@cache
def _triton() -> SimpleNamespace:
    """The Triton kernels by name (imported on first use)."""
    from swiftllm.worker.kernels import (
        triton_kv_store, triton_paged_attention, triton_rmsnorm, triton_rotary, triton_silu_and_mul,
    )
    return SimpleNamespace(
        store_kv=triton_kv_store.store_kv_triton,
        paged_decode_attention=triton_paged_attention.paged_decode_attention_triton,
        rmsnorm=triton_rmsnorm.rmsnorm_triton,
        apply_rotary=triton_rotary.apply_rotary_triton,
        silu_and_mul=triton_silu_and_mul.silu_and_mul_triton,
    )


@cache
def _flash_attn_func():
    if importlib.util.find_spec("flash_attn") is None:
        return None
    from flash_attn import flash_attn_func
    return flash_attn_func


def _cpu_float32(x: torch.Tensor) -> bool:
    """Whether the C++ CPU kernels serve an op on activations ``x`` (its other tensors share x's device and dtype;
    the kernels check them and every layout they need)."""
    return x.is_cpu and x.dtype == torch.float32 and cpu_kernels() is not None


def rmsnorm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    if x.is_cuda:
        return _triton().rmsnorm(x.contiguous(), weight, eps)
    if _cpu_float32(x):
        return cpu_kernels().rmsnorm(x.contiguous(), weight, eps)
    return rmsnorm_torch.rmsnorm(x, weight, eps)


def add_rmsnorm_(residual: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """residual += x in place; returns rmsnorm(residual). residual, x: [T, hidden]."""
    if _cpu_float32(residual) and residual.is_contiguous():
        return cpu_kernels().add_rmsnorm_(residual, x.contiguous(), weight, eps)
    return rmsnorm(residual.add_(x), weight, eps)


def silu_and_mul(gate_up: torch.Tensor) -> torch.Tensor:
    if gate_up.is_cuda:
        return _triton().silu_and_mul(gate_up)
    if _cpu_float32(gate_up):
        return cpu_kernels().silu_and_mul(gate_up.contiguous())
    return silu_torch.silu_and_mul(gate_up)


def split_qkv_rotary(qkv: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, num_q_heads: int, num_kv_heads: int
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """qkv: [T, (hq + 2 hkv) d] (q, k, v heads in order); cos, sin: [T, d / 2] ->
    q [T, hq, d], k [T, hkv, d] with the rotary embedding applied, v [T, hkv, d]."""
    if _cpu_float32(qkv):
        return tuple(cpu_kernels().split_qkv_rotary(qkv.contiguous(), cos, sin, num_q_heads, num_kv_heads))
    num_rows, head_dim = qkv.shape[0], 2 * cos.shape[-1]
    qk, v = qkv.split([(num_q_heads + num_kv_heads) * head_dim, num_kv_heads * head_dim], dim=-1)
    qk = qk.reshape(num_rows, num_q_heads + num_kv_heads, head_dim)
    qk = _triton().apply_rotary(qk, cos, sin) if qk.is_cuda else rotary.apply_rotary(qk, cos, sin)
    q, k = qk.split([num_q_heads, num_kv_heads], dim=1)
    return q, k, v.reshape(num_rows, num_kv_heads, head_dim)


def store_kv(k_cache, v_cache, k, v, slot_mapping) -> None:
    if k.is_cuda:
        return _triton().store_kv(k_cache, v_cache, k.contiguous(), v.contiguous(), slot_mapping)
    if _cpu_float32(k):
        return cpu_kernels().store_kv(k_cache, v_cache, k, v, slot_mapping)
    return kv_store.store_kv(k_cache, v_cache, k, v, slot_mapping)


def decode_attention(q, k_cache, v_cache, state, scale: float) -> torch.Tensor:
    """q: [D, hq, d] for the decode rows of ``state`` -> [D, hq, d]."""
    if q.is_cuda:
        return _triton().paged_decode_attention(q.contiguous(), k_cache, v_cache, state.decode_block_tables,
                                                state.decode_seq_lens, scale, state.decode_max_seq_len)
    if _cpu_float32(q):
        return cpu_kernels().paged_decode_attention(q.contiguous(), k_cache, v_cache, state.decode_block_tables,
                                                    state.decode_seq_lens, scale)
    return paged_attention.paged_decode_attention(q, k_cache, v_cache, state.decode_block_tables,
                                                  state.decode_seq_lens, scale)


FLASH_ATTN_DTYPES = (torch.float16, torch.bfloat16)   # the only dtypes flash-attn's kernels take


def flash_attn_for(q: torch.Tensor):
    """flash-attn's function when it is installed and takes ``q`` (CUDA, float16 / bfloat16), else ``None``."""
    return _flash_attn_func() if q.is_cuda and q.dtype in FLASH_ATTN_DTYPES else None


def prefill_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
    """Causal, the last Tq of Tk positions: q [Tq, hq, d], k, v [Tk, hkv, d] -> [Tq, hq, d]. flash-attn on CUDA in
    float16 / bfloat16 when installed; torch's attention otherwise (float32 on CUDA too)."""
    flash = flash_attn_for(q)
    if flash is not None:   # causal masks align bottom-right, which is the cached-prefix case
        return flash(q[None], k[None], v[None], softmax_scale=scale, causal=True)[0]
    return paged_attention.prefill_attention(q, k, v, scale)
